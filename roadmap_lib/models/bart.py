"""BART (Lewis et al., 2020): a denoising encoder-decoder with BERT's encoder and GPT's decoder.

    source ids -> shared embedding (· sqrt(d) if scale_embedding) + learned positions
        -> LayerNorm -> encoder_layers post-norm encoder blocks -> memory
    target ids -> shared embedding (same) + its own learned positions -> LayerNorm
        -> decoder_layers post-norm decoder blocks -> lm_head (tied) + final_logits_bias -> logits

Against the original Transformer: learned positions instead of sinusoids, a LayerNorm right after
the embeddings, GELU, and a fixed bias on the output logits. The position tables have
``context_length + 2`` rows and position ``p`` reads row ``p + 2`` (fairseq reserved the first two
rows for the padding index); a longer sequence is an error. Padding in the source is masked with
``src_padding_mask`` (True = padding).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..attention import KVCache
from ..layers import ACTIVATIONS, BlockConfig, DecoderBlock, EncoderBlock, LayerNorm
from ..positional import LearnedPositionalEmbedding
from .gpt import check_context
from .seq2seq import EncoderDecoderMixin, check_config

POSITION_OFFSET = 2  # position p is row p + 2 of the learned tables


@dataclass
class BartConfig:
    vocab_size: int = 50265
    context_length: int = 1024  # max_position_embeddings: longest source or target
    d_model: int = 1024
    encoder_layers: int = 12
    decoder_layers: int = 12
    n_heads: int = 16
    d_ff: int = 4096
    activation: str = "gelu"  # exact GELU; any of roadmap_lib.layers.ACTIVATIONS
    norm_eps: float = 1e-5
    dropout: float = 0.1  # on the embeddings and each residual branch
    attn_dropout: float = 0.0
    scale_embedding: bool = False  # multiply token embeddings by sqrt(d_model)
    tie_word_embeddings: bool = True
    pad_token_id: int = 1
    eos_token_id: int = 2
    decoder_start_token_id: int = 2  # BART starts decoding from </s>

    def __post_init__(self) -> None:
        positive = ("vocab_size", "context_length", "d_model", "encoder_layers", "decoder_layers")
        check_config(self, (*positive, "n_heads", "d_ff"), ("dropout", "attn_dropout"))
        if self.d_model % self.n_heads:
            raise ValueError(
                f"n_heads: expected a divisor of d_model={self.d_model}, got {self.n_heads}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )

    def block_config(self) -> BlockConfig:
        return BlockConfig(
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_ff=self.d_ff,
            activation=self.activation,
            norm="layernorm",
            norm_eps=self.norm_eps,
            prenorm=False,
            bias=True,
            dropout=self.dropout,
            attn_dropout=self.attn_dropout,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class Bart(EncoderDecoderMixin, nn.Module):
    def __init__(self, config: BartConfig) -> None:
        super().__init__()
        self.config = c = config
        self.shared = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_token_id)
        self.embed_scale = math.sqrt(c.d_model) if c.scale_embedding else 1.0
        self.drop = nn.Dropout(c.dropout)
        rows = c.context_length + POSITION_OFFSET
        self.encoder_positions = LearnedPositionalEmbedding(rows, c.d_model)
        self.encoder_emb_norm = LayerNorm(c.d_model, c.norm_eps)
        self.encoder = nn.ModuleList(
            EncoderBlock(c.block_config()) for _ in range(c.encoder_layers)
        )
        self.decoder_positions = LearnedPositionalEmbedding(rows, c.d_model)
        self.decoder_emb_norm = LayerNorm(c.d_model, c.norm_eps)
        self.decoder = nn.ModuleList(
            DecoderBlock(c.block_config()) for _ in range(c.decoder_layers)
        )
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.register_buffer("final_logits_bias", torch.zeros(1, c.vocab_size))
        self._init_weights()
        if c.tie_word_embeddings:
            self.lm_head.weight = self.shared.weight

    @torch.no_grad()
    def _init_weights(self, std: float = 0.02) -> None:
        """BART's initialisation: N(0, 0.02) weights, zero biases (norms stay 1 and 0)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        self.shared.weight[self.config.pad_token_id].zero_()
        for pos in (self.encoder_positions, self.decoder_positions):
            nn.init.normal_(pos.weight, std=std)

    def _embed(
        self,
        ids: torch.Tensor,
        positions: LearnedPositionalEmbedding,
        norm: LayerNorm,
        past: int = 0,
    ) -> torch.Tensor:
        check_context(ids, past, self.config.context_length)
        x = positions(self.shared(ids) * self.embed_scale, offset=past + POSITION_OFFSET)
        return self.drop(norm(x))

    def encode(
        self, src: torch.Tensor, src_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """src (batch, S) -> memory (batch, S, d_model)."""
        x = self._embed(src, self.encoder_positions, self.encoder_emb_norm)
        for block in self.encoder:
            x = block(x, key_padding_mask=src_padding_mask)
        return x

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        src_padding_mask: torch.Tensor | None = None,
        cache: list[tuple[KVCache, KVCache]] | None = None,
    ) -> torch.Tensor:
        """tgt (batch, T) -> logits (batch, T, vocab); with ``cache``, ``tgt`` holds the new tokens only."""
        past = len(cache[0][0]) if cache else 0
        x = self._embed(tgt, self.decoder_positions, self.decoder_emb_norm, past)
        return (
            self.lm_head(self._run_decoder(x, memory, src_padding_mask, cache))
            + self.final_logits_bias
        )


__all__ = ["POSITION_OFFSET", "Bart", "BartConfig"]
