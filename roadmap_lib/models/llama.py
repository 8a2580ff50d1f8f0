"""Llama: what changed after GPT-2, in one decoder-only model.

- RMSNorm instead of LayerNorm (no centring, no bias), pre-norm as in GPT-2;
- no learned position table: rotary embeddings (RoPE, half-split convention) rotate q and k;
- SwiGLU feed-forward: down(silu(gate(x)) * up(x)), with d_ff about 8/3 d_model;
- grouped-query attention: fewer key/value heads than query heads (smaller KV cache);
- no biases anywhere; the output head is not tied to the embedding by default.

:mod:`roadmap_lib.models.hf` converts weights to and from transformers' ``LlamaForCausalLM``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..attention import KVCache
from ..layers import BlockConfig, RMSNorm, TransformerBlock
from ..rope import RoPEConfig, RotaryEmbedding
from .gpt import check_context


@dataclass
class LlamaConfig:
    vocab_size: int = 32000
    context_length: int = 2048
    d_model: int = 512
    n_layers: int = 8
    n_heads: int = 8
    n_kv_heads: int | None = None  # None: = n_heads
    head_dim: int | None = None  # None: d_model // n_heads
    d_ff: int | None = None  # None: 8/3 d_model rounded up to a multiple of 32
    rope_base: float = 10000.0
    norm_eps: float = 1e-6
    dropout: float = 0.0
    tie_embeddings: bool = False
    attention_backend: str = "math"  # "math", "sdpa" or "flash" (roadmap_lib.attention.BACKENDS)
    fused_ops: bool = False  # norms and activations as one PyTorch kernel each (same function)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.head_dim is None:
            self.head_dim = self.d_model // self.n_heads
        if self.d_ff is None:
            self.d_ff = 32 * -(-8 * self.d_model // 3 // 32)

    def block_config(self) -> BlockConfig:
        return BlockConfig(
            d_model=self.d_model, n_heads=self.n_heads, n_kv_heads=self.n_kv_heads,
            head_dim=self.head_dim, d_ff=self.d_ff, activation="silu", gated=True, norm="rmsnorm",
            norm_eps=self.norm_eps, prenorm=True, bias=False, dropout=self.dropout,
            attn_dropout=self.dropout, causal=True, attention_backend=self.attention_backend, fused_ops=self.fused_ops,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class Llama(nn.Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.rotary = RotaryEmbedding(RoPEConfig(dim=c.head_dim, base=c.rope_base, convention="half"))
        self.blocks = nn.ModuleList(
            TransformerBlock(c.block_config(), rotary=self.rotary) for _ in range(c.n_layers)
        )
        self.norm = RMSNorm(c.d_model, c.norm_eps, fused=c.fused_ops)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self) -> list[KVCache]:
        return [KVCache() for _ in self.blocks]

    def forward(self, ids: torch.Tensor, cache: list[KVCache] | None = None) -> torch.Tensor:
        """ids (batch, seq) -> logits (batch, seq, vocab_size); ``cache`` as in :class:`GPT`."""
        past = len(cache[0]) if cache else 0
        check_context(ids, past, self.config.context_length)
        positions = torch.arange(past, past + ids.shape[1], device=ids.device)
        x = self.embed(ids)
        for i, block in enumerate(self.blocks):
            x = block(x, positions=positions, cache=cache[i] if cache else None)
        return self.lm_head(self.norm(x))


__all__ = ["Llama", "LlamaConfig"]
