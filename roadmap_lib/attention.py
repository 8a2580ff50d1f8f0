"""Attention: scaled dot-product attention written out, masks, multi-head attention (MHA/GQA/MQA)
and a key/value cache for incremental decoding.

Shapes follow PyTorch: queries are ``(batch, heads, Lq, d)``, keys and values
``(batch, kv_heads, Lk, d)`` (values may have their own last dimension). Boolean masks say
``True`` where a query *may* attend, as in :func:`torch.nn.functional.scaled_dot_product_attention`;
the one exception is ``key_padding_mask``, where ``True`` marks padding (as in
:class:`torch.nn.MultiheadAttention`).

    attention(Q, K, V) = softmax(Q Kᵀ · scale + bias) V,      scale = 1/√d by default
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------------
# Masks. All return booleans, True = may attend, shaped (Lq, Lk) so they broadcast over
# (batch, heads, Lq, Lk); key_padding_mask is the exception documented above.
# --------------------------------------------------------------------------------------------


def causal_mask(lq: int, lk: int | None = None, *, offset: int = 0, device=None) -> torch.Tensor:
    """``(lq, lk)`` boolean mask where query ``i`` may see keys ``j <= i + offset``.

    ``offset=0`` is PyTorch's ``is_causal`` (aligned top-left). When ``lq`` new queries come after
    ``lk - lq`` cached keys, pass ``offset=lk - lq`` (aligned bottom-right).
    """
    lk = lq if lk is None else lk
    i = torch.arange(lq, device=device)[:, None]
    j = torch.arange(lk, device=device)[None, :]
    return j <= i + offset


def sliding_window_mask(
    lq: int, window: int, lk: int | None = None, *, offset: int = 0, device=None
) -> torch.Tensor:
    """Causal mask that also forgets: query ``i`` sees keys ``j`` with
    ``i + offset - window < j <= i + offset``."""
    if window < 1:
        raise ValueError(f"window: expected a positive int, got {window}")
    lk = lq if lk is None else lk
    i = torch.arange(lq, device=device)[:, None] + offset
    j = torch.arange(lk, device=device)[None, :]
    return (j <= i) & (j > i - window)


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(batch, max_len)`` key padding mask from sequence lengths: True marks padding."""
    lengths = torch.as_tensor(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths: expected shape (batch,), got {tuple(lengths.shape)}")
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


def mask_to_bias(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Boolean 'may attend' mask to an additive bias: 0 where allowed, -inf where not."""
    if mask.dtype != torch.bool:
        raise ValueError(f"mask: expected dtype torch.bool, got {mask.dtype}")
    zero = torch.zeros((), dtype=dtype, device=mask.device)
    return torch.where(mask, zero, torch.tensor(float("-inf"), dtype=dtype, device=mask.device))


# --------------------------------------------------------------------------------------------
# Scaled dot-product attention
# --------------------------------------------------------------------------------------------


def _check_qkv(q, k, v, enable_gqa: bool) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4:
            raise ValueError(
                f"{name}: expected 4 dims (batch, heads, seq, dim), got {t.ndim} "
                f"({name}.shape={tuple(t.shape)})"
            )
        if not t.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor, got {t.dtype}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"k, v: expected q's dtype {q.dtype}, got k {k.dtype} and v {v.dtype}")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"k: expected head dim {q.shape[-1]} to match q's, got {k.shape[-1]} "
            f"(k.shape={tuple(k.shape)})"
        )
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(
            f"v: expected (batch, kv_heads, Lk) = {tuple(k.shape[:3])} like k, "
            f"got {tuple(v.shape[:3])} (v.shape={tuple(v.shape)})"
        )
    if k.shape[0] != q.shape[0]:
        raise ValueError(f"k: expected batch {q.shape[0]} like q, got {k.shape[0]}")
    heads, kv_heads = q.shape[1], k.shape[1]
    if heads != kv_heads:
        if not enable_gqa:
            raise ValueError(
                f"k: expected {heads} heads like q, got {kv_heads}; "
                "pass enable_gqa=True for grouped-query attention"
            )
        if heads % kv_heads != 0:
            raise ValueError(
                f"k: expected a number of kv heads that divides q's {heads} heads, got {kv_heads}"
            )


def _check_mask(mask, name: str, target: tuple[int, ...]) -> None:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise ValueError(f"{name}: expected dtype torch.bool or a float dtype, got {mask.dtype}")
    ok = mask.ndim <= 4
    if ok:
        try:
            ok = torch.broadcast_shapes(mask.shape, target) == target
        except RuntimeError:
            ok = False
    if not ok:
        raise ValueError(
            f"{name}: expected a shape that broadcasts to (batch, heads, Lq, Lk) = {target}, "
            f"got {tuple(mask.shape)}"
        )


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    key_padding_mask: torch.Tensor | None = None,
    return_weights: bool = False,
    enable_gqa: bool = False,
    backend: str = "math",
):
    """softmax(q kᵀ · scale + mask) v, with the semantics of PyTorch's function of the same name.

    q: ``(batch, heads, Lq, d)``; k: ``(batch, kv_heads, Lk, d)``; v: ``(batch, kv_heads, Lk, dv)``.
    attn_mask: boolean (True = may attend) or additive float, broadcastable to
    ``(batch, heads, Lq, Lk)``. key_padding_mask: ``(batch, Lk)`` boolean, True = padding.
    is_causal: query ``i`` sees keys ``j <= i`` (top-left aligned, like PyTorch); unlike PyTorch it
    may be combined with ``attn_mask``. A query that may see no key at all gets zeros (as PyTorch).
    dropout_p: dropout on the attention weights (the caller passes 0.0 at evaluation time).
    enable_gqa: with ``kv_heads < heads``, query head ``h`` uses kv head
    ``h // (heads // kv_heads)``.
    Returns ``(batch, heads, Lq, dv)``, and the ``(batch, heads, Lq, Lk)`` weights if
    ``return_weights``.

    backend: the same function computed three ways (:data:`BACKENDS`). ``"math"``, the default, is
    the code below, written out to be read (and the only one that can return the weights, so
    ``return_weights`` always takes it); ``"sdpa"`` folds every mask into one and calls
    :func:`torch.nn.functional.scaled_dot_product_attention`, PyTorch's fused kernels;
    ``"flash"`` runs the book's Triton kernel (chapter 13; causal or no mask only, no dropout).
    """
    _check_qkv(q, k, v, enable_gqa)
    batch, heads, lq, d = q.shape
    lk = k.shape[2]
    target = (batch, heads, lq, lk)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p: expected a probability in [0, 1), got {dropout_p}")
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "flash" and not return_weights:
        return _flash(q, k, v, attn_mask, dropout_p, is_causal, scale, key_padding_mask)
    if backend == "sdpa" and not return_weights:
        return _sdpa(q, k, v, attn_mask, dropout_p, is_causal, scale, key_padding_mask, target)
    if k.shape[1] != heads:  # grouped-query attention: share each kv head across a group
        group = heads // k.shape[1]
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)

    scale = 1.0 / math.sqrt(d) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (batch, heads, Lq, Lk)

    allowed = None  # boolean "may attend", combined from every boolean source
    if attn_mask is not None:
        _check_mask(attn_mask, "attn_mask", target)
        if attn_mask.dtype == torch.bool:
            allowed = attn_mask
        else:
            scores = scores + attn_mask.to(scores.dtype)
    if is_causal:
        c = causal_mask(lq, lk, device=q.device)
        allowed = c if allowed is None else allowed & c
    if key_padding_mask is not None:
        _check_padding(key_padding_mask, batch, lk)
        keep = ~key_padding_mask[:, None, None, :]
        allowed = keep if allowed is None else allowed & keep
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))

    # a row with every key masked is all -inf and softmax would give NaN: PyTorch returns zeros
    # there; filling such rows before the softmax also keeps their gradient finite
    empty = scores.amax(dim=-1, keepdim=True) == float("-inf")
    weights = torch.softmax(scores.masked_fill(empty, 0.0), dim=-1).masked_fill(empty, 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p, training=True)
    out = weights @ v
    return (out, weights) if return_weights else out


#: The ways :func:`scaled_dot_product_attention` can compute attention (its ``backend`` argument).
BACKENDS = ("math", "sdpa", "flash")


def _check_padding(key_padding_mask, batch: int, lk: int) -> None:
    if not isinstance(key_padding_mask, torch.Tensor) or key_padding_mask.dtype != torch.bool:
        got = getattr(key_padding_mask, "dtype", type(key_padding_mask).__name__)
        raise ValueError(f"key_padding_mask: expected a torch.bool tensor, got {got}")
    if tuple(key_padding_mask.shape) != (batch, lk):
        raise ValueError(
            f"key_padding_mask: expected shape (batch, Lk) = {(batch, lk)}, got {tuple(key_padding_mask.shape)}"
        )


def _sdpa(q, k, v, attn_mask, dropout_p, is_causal, scale, key_padding_mask, target):
    """The "sdpa" backend: every mask folded into one, then PyTorch's fused attention."""
    batch, _, lq, lk = target
    allowed, additive = None, None
    if attn_mask is not None:
        _check_mask(attn_mask, "attn_mask", target)
        if attn_mask.dtype == torch.bool:
            allowed = attn_mask
        else:
            additive = attn_mask.to(q.dtype)
    if key_padding_mask is not None:
        _check_padding(key_padding_mask, batch, lk)
        keep = ~key_padding_mask[:, None, None, :]
        allowed = keep if allowed is None else allowed & keep
    if is_causal and (allowed is not None or additive is not None):
        c = causal_mask(lq, lk, device=q.device)
        allowed = c if allowed is None else allowed & c
        is_causal = False
    mask = allowed
    empty = None
    if additive is not None:
        mask = additive if allowed is None else additive.masked_fill(~allowed, float("-inf"))
        # a row with every key masked: PyTorch's kernels give zeros for boolean masks, but NaN for
        # an all -inf float row; give such rows zeros, as the math path does
        empty = (mask == float("-inf")).all(-1, keepdim=True)
        mask = mask.masked_fill(empty, 0.0)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal,
                                         scale=scale, enable_gqa=k.shape[1] != q.shape[1])
    return out if empty is None else out.masked_fill(empty, 0.0)


def _flash(q, k, v, attn_mask, dropout_p, is_causal, scale, key_padding_mask):
    """The "flash" backend: the Triton FlashAttention-2 kernel of chapter 13."""
    if attn_mask is not None or key_padding_mask is not None or dropout_p > 0.0:
        raise ValueError("backend='flash' takes no attn_mask, key_padding_mask or dropout (its kernel "
                         "computes causal or unmasked attention only); use backend='sdpa' or 'math'")
    if is_causal and q.shape[2] != k.shape[2]:
        raise ValueError(f"backend='flash': is_causal with Lq={q.shape[2]} != Lk={k.shape[2]} aligns "
                         "differently in the kernel (bottom-right); pass an explicit mask with another backend")
    from roadmap_lib.kernels import flash_attention  # Triton is imported only when this backend runs

    return flash_attention(q, k, v, causal=is_causal, scale=scale)


def set_attention_backend(model: nn.Module, backend: str) -> nn.Module:
    """Make every :class:`MultiHeadAttention` in ``model`` compute with ``backend``; returns ``model``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    found = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not found:
        raise ValueError(f"model: {type(model).__name__} has no MultiHeadAttention to switch")
    for module in found:
        module.config.backend = backend
    return model


# --------------------------------------------------------------------------------------------
# Key/value cache
# --------------------------------------------------------------------------------------------


class KVCache:
    """The keys and values one attention layer has already computed, for incremental decoding.

    ``update(k, v)`` appends ``(batch, kv_heads, new, d)`` along the sequence and returns all of
    them. For cross-attention the cache is filled once from the encoder output and then reused.
    """

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is not None and k.shape[:2] != self.k.shape[:2]:
            raise ValueError(
                f"k: expected (batch, kv_heads) = {tuple(self.k.shape[:2])} like the cache, "
                f"got {tuple(k.shape[:2])}"
            )
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def crop(self, length: int) -> None:
        """Keep the first ``length`` positions (e.g. after rejected speculative tokens)."""
        if self.k is not None:
            self.k, self.v = self.k[:, :, :length], self.v[:, :, :length]

    def reset(self) -> None:
        self.k = self.v = None


# --------------------------------------------------------------------------------------------
# Multi-head attention
# --------------------------------------------------------------------------------------------

#: apply_rotary(q, k, positions) -> (q, k): rotates (batch, heads, L, d) queries and keys.
Rotary = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class AttentionConfig:
    d_model: int
    n_heads: int
    n_kv_heads: int | None = None  # None: = n_heads (MHA); 1: MQA; in between: GQA
    head_dim: int | None = None  # None: d_model // n_heads
    bias: bool = True
    dropout: float = 0.0  # on the attention weights, in training mode
    causal: bool = False
    backend: str = "math"  # "math" (written out), "sdpa" (PyTorch's fused kernels) or "flash" (Triton)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {self.backend!r}")
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.head_dim is None:
            if self.d_model % self.n_heads:
                raise ValueError(
                    f"n_heads: expected a divisor of d_model={self.d_model}, got {self.n_heads}"
                )
            self.head_dim = self.d_model // self.n_heads
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_kv_heads: expected a divisor of n_heads={self.n_heads}, got {self.n_kv_heads}"
            )


class MultiHeadAttention(nn.Module):
    """Multi-head attention; MHA, GQA or MQA by the number of key/value heads.

    Self-attention by default; pass ``context`` (batch, Lc, d_model) for cross-attention.
    Positions plug in two ways: ``rotary(q, k, positions)`` rotates queries and keys (RoPE), and
    ``attn_bias`` (broadcastable to (batch, heads, Lq, Lk)) is added to the scores (ALiBi, T5).
    """

    def __init__(self, config: AttentionConfig, rotary: Rotary | None = None) -> None:
        super().__init__()
        self.config = c = config
        self.q_proj = nn.Linear(c.d_model, c.n_heads * c.head_dim, bias=c.bias)
        self.k_proj = nn.Linear(c.d_model, c.n_kv_heads * c.head_dim, bias=c.bias)
        self.v_proj = nn.Linear(c.d_model, c.n_kv_heads * c.head_dim, bias=c.bias)
        self.o_proj = nn.Linear(c.n_heads * c.head_dim, c.d_model, bias=c.bias)
        self.rotary = rotary

    def _split(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        b, n, _ = x.shape  # (batch, seq, heads*dim) -> (batch, heads, seq, dim)
        return x.view(b, n, heads, self.config.head_dim).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        is_causal: bool | None = None,
        positions: torch.Tensor | None = None,
        rotary: Rotary | None = None,
        attn_bias: torch.Tensor | None = None,
        cache: KVCache | None = None,
        return_weights: bool = False,
    ):
        """x: (batch, L, d_model) -> (batch, L, d_model) [, weights (batch, heads, L, Lk)].

        With a ``cache``, ``x`` holds only the new tokens; masks, ``key_padding_mask`` and
        ``attn_bias`` then cover all ``Lk`` = cached + new keys, and ``positions`` (default
        ``past, ..., past + L - 1``) are those of the new tokens.
        """
        c = self.config
        if x.ndim != 3 or x.shape[-1] != c.d_model:
            raise ValueError(f"x: expected (batch, seq, {c.d_model}), got {tuple(x.shape)}")
        causal = c.causal if is_causal is None else is_causal
        if causal and context is not None:
            raise ValueError("is_causal: cross-attention (context given) cannot be causal")
        q = self._split(self.q_proj(x), c.n_heads)
        past = 0
        if context is not None and cache is not None and len(cache) > 0:
            k, v = cache.k, cache.v  # cross-attention: the encoder's keys were cached once
        else:
            src = x if context is None else context
            k = self._split(self.k_proj(src), c.n_kv_heads)
            v = self._split(self.v_proj(src), c.n_kv_heads)
            rotary = self.rotary if rotary is None else rotary
            if rotary is not None and context is None:
                past = 0 if cache is None else len(cache)
                if positions is None:
                    positions = torch.arange(past, past + x.shape[1], device=x.device)
                q, k = rotary(q, k, positions)
            if cache is not None:
                past = len(cache)
                k, v = cache.update(k, v)

        lq, lk = q.shape[2], k.shape[2]
        mask = attn_mask
        if causal and (past > 0 or mask is not None or attn_bias is not None):
            cm = causal_mask(lq, lk, offset=lk - lq, device=x.device)
            mask = cm if mask is None else _and_masks(mask, cm)
            causal = False
        if attn_bias is not None:
            _check_mask(attn_bias, "attn_bias", (x.shape[0], c.n_heads, lq, lk))
            if not attn_bias.is_floating_point():
                raise ValueError(f"attn_bias: expected a float dtype, got {attn_bias.dtype}")
            mask = attn_bias if mask is None else _and_masks(mask, attn_bias)
        out = scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=c.dropout if self.training else 0.0,
            is_causal=causal, key_padding_mask=key_padding_mask,
            return_weights=return_weights, enable_gqa=c.n_kv_heads != c.n_heads, backend=c.backend,
        )
        out, weights = out if return_weights else (out, None)
        out = self.o_proj(out.transpose(1, 2).reshape(x.shape[0], lq, c.n_heads * c.head_dim))
        return (out, weights) if return_weights else out


def _and_masks(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Combine two masks, each boolean (True = may attend) or additive float."""
    if a.dtype == torch.bool and b.dtype == torch.bool:
        return a & b
    fa = mask_to_bias(a) if a.dtype == torch.bool else a
    fb = mask_to_bias(b) if b.dtype == torch.bool else b
    return fa + fb


__all__ = [
    "AttentionConfig",
    "KVCache",
    "MultiHeadAttention",
    "Rotary",
    "causal_mask",
    "mask_to_bias",
    "padding_mask",
    "scaled_dot_product_attention",
    "set_attention_backend",
    "BACKENDS",
    "sliding_window_mask",
]
