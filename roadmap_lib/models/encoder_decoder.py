"""The original Transformer (Vaswani et al., 2017): an encoder-decoder for sequence transduction.

    source ids -> embedding * sqrt(d) + sinusoidal positions -> n_layers post-norm encoder blocks
    target ids -> embedding * sqrt(d) + sinusoidal positions -> n_layers post-norm decoder blocks
        (causal self-attention, cross-attention to the encoder output, feed-forward)
        -> output projection tied to the shared embedding -> logits

Source and target share one vocabulary and one embedding matrix, as in the paper. Padding in the
source is masked with ``src_padding_mask`` (True = padding). The T5- and BART-style variants are in
``roadmap_lib.models.t5`` and ``roadmap_lib.models.bart``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..attention import KVCache
from ..layers import BlockConfig, DecoderBlock, EncoderBlock
from ..positional import SinusoidalPositionalEncoding
from .gpt import check_context


@dataclass
class TransformerConfig:
    vocab_size: int = 1000
    context_length: int = 256  # longest source or target sequence
    d_model: int = 512
    n_layers: int = 6  # in the encoder and in the decoder
    n_heads: int = 8
    d_ff: int | None = None  # None: 4 * d_model (the paper: 2048 for d_model 512)
    dropout: float = 0.1

    def block_config(self) -> BlockConfig:
        return BlockConfig(d_model=self.d_model, n_heads=self.n_heads, d_ff=self.d_ff,
                           activation="relu", norm="layernorm", norm_eps=1e-5, prenorm=False,
                           bias=True, dropout=self.dropout)

    def to_dict(self) -> dict:
        return asdict(self)


class Transformer(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.positions = SinusoidalPositionalEncoding(c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.encoder = nn.ModuleList(EncoderBlock(c.block_config()) for _ in range(c.n_layers))
        self.decoder = nn.ModuleList(DecoderBlock(c.block_config()) for _ in range(c.n_layers))
        self.out = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.out.weight = self.embed.weight
        nn.init.normal_(self.embed.weight, mean=0.0, std=c.d_model**-0.5)

    def _embed(self, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        return self.drop(self.positions(self.embed(ids) * math.sqrt(self.config.d_model), offset))

    def encode(self, src: torch.Tensor, src_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """src (batch, S) -> memory (batch, S, d_model)."""
        check_context(src, 0, self.config.context_length)
        x = self._embed(src)
        for block in self.encoder:
            x = block(x, key_padding_mask=src_padding_mask)
        return x

    def new_cache(self) -> list[tuple[KVCache, KVCache]]:
        """Per decoder layer: (self-attention cache, cross-attention cache)."""
        return [(KVCache(), KVCache()) for _ in self.decoder]

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_padding_mask: torch.Tensor | None = None,
               cache: list[tuple[KVCache, KVCache]] | None = None) -> torch.Tensor:
        """tgt (batch, T) -> logits (batch, T, vocab); with ``cache``, ``tgt`` holds the new tokens only."""
        past = len(cache[0][0]) if cache else 0
        check_context(tgt, past, self.config.context_length)
        x = self._embed(tgt, offset=past)
        for i, block in enumerate(self.decoder):
            self_cache, cross_cache = cache[i] if cache else (None, None)
            x = block(x, memory, context_padding_mask=src_padding_mask, cache=self_cache,
                      cross_cache=cross_cache)
        return self.out(x)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor,
                src_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: logits (batch, T, vocab) for every target position at once."""
        return self.decode(tgt, self.encode(src, src_padding_mask), src_padding_mask)


__all__ = ["Transformer", "TransformerConfig"]
