"""The rest of a transformer block: normalisation, activations, the feed-forward network, and the
blocks that put them around attention with residual connections (pre-norm and post-norm).

One :class:`TransformerBlock` covers the classic layers: a GPT-2 block is pre-norm LayerNorm +
attention with biases + a GELU(tanh) MLP; a BERT layer is the same pieces post-norm with exact GELU;
a Llama decoder layer is pre-norm RMSNorm + grouped-query attention with RoPE + a SwiGLU MLP.
``roadmap_lib.hf_layers`` loads those three from transformers with the same weights.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from roadmap_lib.attention import AttentionConfig, KVCache, MultiHeadAttention, Rotary

# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


class LayerNorm(nn.Module):
    """y = (x - mean) / sqrt(var + eps) · weight + bias, over the last dimension.

    The variance is the biased one (divided by n), as in torch.nn.LayerNorm. ``fused=True``
    computes the same function with PyTorch's one-kernel ``F.layer_norm`` (faster, the same
    parameters); the default writes it out.
    """

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True, fused: bool = False) -> None:
        super().__init__()
        self.eps, self.fused = eps, fused
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
        mean = x.mean(-1, keepdim=True)
        var = (x - mean).pow(2).mean(-1, keepdim=True)
        y = (x - mean) * torch.rsqrt(var + self.eps) * self.weight
        return y if self.bias is None else y + self.bias


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · weight: LayerNorm without centring and without bias.

    ``eps=None`` uses the machine epsilon of the input's dtype, as ``torch.nn.RMSNorm`` does.
    Half-precision inputs are normalised in float32 (as Llama does) and cast back. ``fused=True``
    normalises with PyTorch's ``F.rms_norm`` (same function, one kernel).
    """

    def __init__(self, dim: int, eps: float | None = None, fused: bool = False) -> None:
        super().__init__()
        self.eps, self.fused = eps, fused
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.float() if dtype in (torch.float16, torch.bfloat16) else x
        eps = torch.finfo(dtype).eps if self.eps is None else self.eps
        if self.fused:
            return self.weight * F.rms_norm(h, (h.shape[-1],), eps=eps).to(dtype)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
        return self.weight * h.to(dtype)


def make_norm(kind: str, dim: int, eps: float | None = None, bias: bool = True,
              fused: bool = False) -> nn.Module:
    if kind == "layernorm":
        return LayerNorm(dim, 1e-5 if eps is None else eps, bias=bias, fused=fused)
    if kind == "rmsnorm":
        return RMSNorm(dim, eps, fused=fused)
    raise ValueError(f"norm: expected 'layernorm' or 'rmsnorm', got {kind!r}")


# --------------------------------------------------------------------------------------------
# Activations. The gated ones (GLU family) split their input in two halves a, b and return
# act(a) · b; inside FeedForward the halves are two separate projections (gate_proj, up_proj).
# --------------------------------------------------------------------------------------------


def relu(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_min(0)


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """x · Φ(x) (``approximate='none'``) or the tanh approximation GPT-2 uses (``'tanh'``)."""
    if approximate == "none":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if approximate == "tanh":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))
    raise ValueError(f"approximate: expected 'none' or 'tanh', got {approximate!r}")


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return gelu(x, approximate="tanh")


def silu(x: torch.Tensor) -> torch.Tensor:
    """x · sigmoid(x), also called Swish (with β = 1)."""
    return x * torch.sigmoid(x)


def _halves(x: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape[-1] % 2:
        raise ValueError(f"x: {name} expects an even last dimension, got {x.shape[-1]}")
    return x.chunk(2, dim=-1)


def swiglu(x: torch.Tensor) -> torch.Tensor:
    """SiLU(a) · b with (a, b) the two halves of the last dimension."""
    a, b = _halves(x, "swiglu")
    return silu(a) * b


def geglu(x: torch.Tensor) -> torch.Tensor:
    """GELU(a) · b with (a, b) the two halves of the last dimension."""
    a, b = _halves(x, "geglu")
    return gelu(a) * b


#: The activations a FeedForward can use, by name (the gated ones set ``gated=True``).
ACTIVATIONS = {"relu": relu, "gelu": gelu, "gelu_tanh": gelu_tanh, "silu": silu}

#: The same functions, each one PyTorch kernel (``fused=True`` in FeedForward): faster on a CPU,
#: equal to the written-out ones within float rounding (tests/test_layers*.py).
FUSED_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "gelu_tanh": partial(F.gelu, approximate="tanh"),
                     "silu": F.silu}
GATED = {"swiglu": "silu", "geglu": "gelu", "reglu": "relu"}


# --------------------------------------------------------------------------------------------
# Feed-forward network
# --------------------------------------------------------------------------------------------


class FeedForward(nn.Module):
    """Position-wise MLP: down(act(up(x))), or gated: down(act(gate(x)) · up(x)).

    ``activation`` is one of ACTIVATIONS, or 'swiglu' / 'geglu' / 'reglu', which mean the gated
    form with SiLU / GELU / ReLU. ``fused=True`` takes the activation from FUSED_ACTIVATIONS.
    """

    def __init__(
        self, d_model: int, d_ff: int, activation: str = "gelu", gated: bool = False,
        bias: bool = True, dropout: float = 0.0, fused: bool = False,
    ) -> None:
        super().__init__()
        if activation in GATED:
            activation, gated = GATED[activation], True
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {sorted(ACTIVATIONS) + sorted(GATED)}, "
                f"got {activation!r}"
            )
        self.act = (FUSED_ACTIVATIONS if fused else ACTIVATIONS)[activation]
        self.gate_proj = nn.Linear(d_model, d_ff, bias=bias) if gated else None
        self.up_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.down_proj = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up_proj(x)
        h = self.act(self.gate_proj(x)) * h if self.gate_proj is not None else self.act(h)
        return self.down_proj(self.dropout(h))


# --------------------------------------------------------------------------------------------
# Transformer blocks
# --------------------------------------------------------------------------------------------


@dataclass
class BlockConfig:
    d_model: int
    n_heads: int
    n_kv_heads: int | None = None  # GQA / MQA when smaller than n_heads
    head_dim: int | None = None
    d_ff: int | None = None  # None: 4 · d_model
    activation: str = "gelu"  # relu, gelu, gelu_tanh, silu, swiglu, geglu, reglu
    gated: bool = False
    norm: str = "layernorm"  # or "rmsnorm"
    norm_eps: float | None = 1e-5
    prenorm: bool = True  # False: the original post-norm block
    bias: bool = True  # in the attention and MLP projections
    dropout: float = 0.0  # on each residual branch
    attn_dropout: float = 0.0  # on the attention weights
    causal: bool = False
    cross_attention: bool = False  # a decoder block of an encoder-decoder model
    attention_backend: str = "math"  # roadmap_lib.attention.BACKENDS: "math", "sdpa" or "flash"
    fused_ops: bool = False  # norms and activations as single PyTorch kernels (same function)

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        if self.norm not in ("layernorm", "rmsnorm"):
            raise ValueError(f"norm: expected 'layernorm' or 'rmsnorm', got {self.norm!r}")

    def attention_config(self, causal: bool) -> AttentionConfig:
        return AttentionConfig(
            d_model=self.d_model, n_heads=self.n_heads, n_kv_heads=self.n_kv_heads,
            head_dim=self.head_dim, bias=self.bias, dropout=self.attn_dropout, causal=causal,
            backend=self.attention_backend,
        )


class TransformerBlock(nn.Module):
    """Self-attention, optional cross-attention, feed-forward; each a residual branch.

    pre-norm  (GPT-2, Llama):  x = x + f(norm(x))
    post-norm (original, BERT): x = norm(x + f(x))
    """

    def __init__(self, config: BlockConfig, rotary: Rotary | None = None) -> None:
        super().__init__()
        self.config = c = config
        self.attn_norm = make_norm(c.norm, c.d_model, c.norm_eps, fused=c.fused_ops)
        self.attn = MultiHeadAttention(c.attention_config(c.causal), rotary=rotary)
        if c.cross_attention:
            self.cross_norm = make_norm(c.norm, c.d_model, c.norm_eps, fused=c.fused_ops)
            self.cross_attn = MultiHeadAttention(c.attention_config(False))
        self.ffn_norm = make_norm(c.norm, c.d_model, c.norm_eps, fused=c.fused_ops)
        self.ffn = FeedForward(c.d_model, c.d_ff, c.activation, c.gated, c.bias, fused=c.fused_ops)
        self.dropout = nn.Dropout(c.dropout)

    def _residual(self, x: torch.Tensor, norm: nn.Module, branch) -> torch.Tensor:
        if self.config.prenorm:
            return x + self.dropout(branch(norm(x)))
        return norm(x + self.dropout(branch(x)))

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        context_padding_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        rotary: Rotary | None = None,
        attn_bias: torch.Tensor | None = None,
        cache: KVCache | None = None,
        cross_cache: KVCache | None = None,
    ) -> torch.Tensor:
        """x: (batch, L, d_model); context: (batch, Lc, d_model) for cross-attention blocks.

        Masks, ``positions``, ``rotary``, ``attn_bias`` and ``cache`` go to the self-attention
        (see :class:`~roadmap_lib.attention.MultiHeadAttention`); ``context_padding_mask`` and
        ``cross_cache`` to the cross-attention.
        """
        x = self._residual(x, self.attn_norm, lambda h: self.attn(
            h, attn_mask=attn_mask, key_padding_mask=key_padding_mask, positions=positions,
            rotary=rotary, attn_bias=attn_bias, cache=cache))
        if self.config.cross_attention:
            if context is None:
                raise ValueError(
                    "context: this block has cross-attention and needs the encoder output"
                )
            x = self._residual(x, self.cross_norm, lambda h: self.cross_attn(
                h, context, key_padding_mask=context_padding_mask, cache=cross_cache))
        elif context is not None:
            raise ValueError("context: this block has no cross-attention (cross_attention=False)")
        return self._residual(x, self.ffn_norm, self.ffn)


class EncoderBlock(TransformerBlock):
    """Bidirectional self-attention + feed-forward (BERT, the original encoder)."""

    def __init__(self, config: BlockConfig, rotary: Rotary | None = None) -> None:
        super().__init__(dataclasses.replace(config, causal=False, cross_attention=False), rotary)


class DecoderBlock(TransformerBlock):
    """Causal self-attention + cross-attention to the encoder + feed-forward (original decoder).

    For a decoder-only model (GPT, Llama) use ``TransformerBlock`` with ``causal=True``.
    """

    def __init__(self, config: BlockConfig, rotary: Rotary | None = None) -> None:
        super().__init__(dataclasses.replace(config, causal=True, cross_attention=True), rotary)


__all__ = [
    "ACTIVATIONS",
    "BlockConfig",
    "DecoderBlock",
    "EncoderBlock",
    "FUSED_ACTIVATIONS",
    "FeedForward",
    "LayerNorm",
    "RMSNorm",
    "TransformerBlock",
    "geglu",
    "gelu",
    "gelu_tanh",
    "make_norm",
    "relu",
    "silu",
    "swiglu",
]
