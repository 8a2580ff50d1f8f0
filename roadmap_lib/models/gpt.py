"""GPT: the GPT-2 architecture, a decoder-only transformer trained to predict the next token.

    ids -> token embedding + learned position embedding -> n_layers pre-norm blocks
        (causal self-attention, GELU(tanh) MLP) -> final LayerNorm -> lm_head (tied to the
        token embedding) -> logits

Built from :mod:`roadmap_lib.layers` blocks; :mod:`roadmap_lib.models.hf` converts weights to and
from transformers' ``GPT2LMHeadModel`` (same logits within 1e-5).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..attention import KVCache
from ..layers import BlockConfig, LayerNorm, TransformerBlock


@dataclass
class GPTConfig:
    vocab_size: int = 50257
    context_length: int = 1024  # GPT-2's n_positions
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None  # None: 4 * d_model
    dropout: float = 0.0  # embeddings, residual branches and attention weights
    bias: bool = True
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    attention_backend: str = "math"  # "math", "sdpa" or "flash" (roadmap_lib.attention.BACKENDS)
    fused_ops: bool = False  # norms and activations as one PyTorch kernel each (same function)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads: expected a divisor of d_model={self.d_model}, got {self.n_heads}")

    def block_config(self) -> BlockConfig:
        return BlockConfig(
            d_model=self.d_model, n_heads=self.n_heads, d_ff=self.d_ff, activation="gelu_tanh",
            norm="layernorm", norm_eps=self.norm_eps, prenorm=True, bias=self.bias,
            dropout=self.dropout, attn_dropout=self.dropout, causal=True,
            attention_backend=self.attention_backend, fused_ops=self.fused_ops,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def check_context(ids: torch.Tensor, past: int, context_length: int) -> None:
    """Raise a clear error for ids that are not (batch, seq) ints or run past the context window."""
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.is_floating_point():
        got = f"shape {tuple(ids.shape)}, {ids.dtype}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids: expected a (batch, seq) integer tensor, got {got}")
    if past + ids.shape[1] > context_length:
        raise ValueError(
            f"ids: sequence length {past + ids.shape[1]}"
            + (f" ({past} cached + {ids.shape[1]} new)" if past else "")
            + f" exceeds the model's context length {context_length}; crop the input to its last "
            f"{context_length} tokens (generation functions take context_length=...)"
        )


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.d_model)
        self.wpe = nn.Embedding(c.context_length, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(c.block_config()) for _ in range(c.n_layers))
        self.ln_f = LayerNorm(c.d_model, c.norm_eps, bias=c.bias, fused=c.fused_ops)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2: scale the projections that write into the residual stream by 1/sqrt(2 n_layers)
        for name, p in self.named_parameters():
            if name.endswith(("attn.o_proj.weight", "ffn.down_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self) -> list[KVCache]:
        """One empty key/value cache per layer, for incremental decoding."""
        return [KVCache() for _ in self.blocks]

    def forward(self, ids: torch.Tensor, cache: list[KVCache] | None = None) -> torch.Tensor:
        """ids (batch, seq) -> logits (batch, seq, vocab_size).

        With ``cache`` (from :meth:`new_cache`), ``ids`` are only the new tokens; the cache grows.
        """
        past = len(cache[0]) if cache else 0
        check_context(ids, past, self.config.context_length)
        positions = torch.arange(past, past + ids.shape[1], device=ids.device)
        x = self.drop(self.wte(ids) + self.wpe(positions))
        for i, block in enumerate(self.blocks):
            x = block(x, cache=cache[i] if cache else None)
        return self.lm_head(self.ln_f(x))


__all__ = ["GPT", "GPTConfig", "check_context"]
