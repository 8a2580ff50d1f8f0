"""T5 (Raffel et al., 2020): an encoder-decoder with relative position biases and no biases at all.

    source ids -> shared embedding -> n_layers pre-norm encoder blocks -> RMS norm -> memory
    target ids -> shared embedding -> n_decoder_layers pre-norm decoder blocks -> RMS norm
        -> (· d_model^-0.5 when the head is tied to the embedding) -> lm_head -> logits

What sets it apart from the original Transformer:

- no absolute positions: one learned scalar per (distance bucket, head) is added to the attention
  scores; it is computed once per stack (bidirectional in the encoder, causal in the decoder) and
  every layer uses the same one (transformers keeps its table in the first layer);
- no 1/sqrt(d) on the scores (T5 folds that scale into the initialisation of the queries);
- no bias in any linear layer, and "LayerNorm" is the RMS norm without centring or bias;
- pre-norm blocks, a ReLU (or, in T5 v1.1, gated-GELU) feed-forward.

Padding in the source is masked with ``src_padding_mask`` (True = padding). T5 has no length
limit: far distances share the last bucket.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    mask_to_bias,
    scaled_dot_product_attention,
)
from ..layers import BlockConfig, RMSNorm, TransformerBlock
from ..positional import T5RelativePositionBias
from .gpt import check_context
from .seq2seq import EncoderDecoderMixin, check_config

#: T5's ``feed_forward_proj`` names -> (our activation, gated). "gated-gelu" is GELU with the tanh
#: approximation, as in transformers.
FEED_FORWARD = {
    "relu": ("relu", False),
    "gelu": ("gelu", False),
    "gated-relu": ("relu", True),
    "gated-gelu": ("gelu_tanh", True),
    "gated-silu": ("silu", True),
}


@dataclass
class T5Config:
    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64  # per head; n_heads * d_kv need not equal d_model
    d_ff: int = 2048
    n_layers: int = 6  # encoder
    n_decoder_layers: int | None = None  # None: = n_layers
    n_heads: int = 8
    num_buckets: int = 32  # relative-position buckets
    max_distance: int = 128  # distances beyond this share the last bucket
    feed_forward: str = "relu"  # one of FEED_FORWARD
    norm_eps: float = 1e-6
    dropout: float = 0.1
    tie_word_embeddings: bool = True  # lm_head = embedding, decoder output scaled by d_model^-0.5
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0  # T5 starts decoding from the padding token

    def __post_init__(self) -> None:
        if self.n_decoder_layers is None:
            self.n_decoder_layers = self.n_layers
        positive = ("vocab_size", "d_model", "d_kv", "d_ff", "n_layers", "n_decoder_layers")
        check_config(self, (*positive, "n_heads", "num_buckets"), ("dropout",))
        if self.num_buckets < 4:
            raise ValueError(
                f"num_buckets: expected at least 4 (2 per direction), got {self.num_buckets}"
            )
        if self.max_distance <= self.num_buckets // 2:
            raise ValueError(
                f"max_distance: expected more than num_buckets // 2 = {self.num_buckets // 2} "
                f"(the decoder's exact buckets), got {self.max_distance}"
            )
        if self.feed_forward not in FEED_FORWARD:
            raise ValueError(
                f"feed_forward: expected one of {sorted(FEED_FORWARD)}, got {self.feed_forward!r}"
            )

    def block_config(self, decoder: bool) -> BlockConfig:
        activation, gated = FEED_FORWARD[self.feed_forward]
        return BlockConfig(
            d_model=self.d_model,
            n_heads=self.n_heads,
            head_dim=self.d_kv,
            d_ff=self.d_ff,
            activation=activation,
            gated=gated,
            norm="rmsnorm",
            norm_eps=self.norm_eps,
            prenorm=True,
            bias=False,
            dropout=self.dropout,
            attn_dropout=self.dropout,
            causal=decoder,
            cross_attention=decoder,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class T5Attention(MultiHeadAttention):
    """Multi-head attention as T5 has it: softmax(q kᵀ + position bias) v, unscaled.

    The same projections as :class:`~roadmap_lib.attention.MultiHeadAttention` (built with
    ``bias=False``); only the scores differ, so only ``forward`` is new. ``attn_bias`` is the
    relative position bias ``(1, heads, Lq, Lk)`` (None in cross-attention).
    """

    def forward(
        self,
        x,
        context=None,
        *,
        attn_mask=None,
        key_padding_mask=None,
        is_causal=None,
        positions=None,
        rotary=None,
        attn_bias=None,
        cache: KVCache | None = None,
    ):
        c = self.config
        if x.ndim != 3 or x.shape[-1] != c.d_model:
            raise ValueError(f"x: expected (batch, seq, {c.d_model}), got {tuple(x.shape)}")
        if rotary is not None or attn_mask is not None:
            raise ValueError("rotary, attn_mask: T5 attention takes positions as attn_bias only")
        q = self._split(self.q_proj(x), c.n_heads)
        if context is not None and cache is not None and len(cache) > 0:
            k, v = cache.k, cache.v  # the encoder's keys and values, computed at the first step
        else:
            src = x if context is None else context
            k, v = (
                self._split(self.k_proj(src), c.n_heads),
                self._split(self.v_proj(src), c.n_heads),
            )
            if cache is not None:
                k, v = cache.update(k, v)
        lq, lk = q.shape[2], k.shape[2]
        bias = attn_bias
        if (c.causal if is_causal is None else is_causal) and context is None:
            allowed = causal_mask(lq, lk, offset=lk - lq, device=x.device)  # new queries come last
            bias = (
                mask_to_bias(allowed, q.dtype)
                if bias is None
                else bias.masked_fill(~allowed, float("-inf"))
            )
        out = scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=bias,
            dropout_p=c.dropout if self.training else 0.0,
            scale=1.0,
            key_padding_mask=key_padding_mask,
            backend=c.backend,
        )
        return self.o_proj(out.transpose(1, 2).reshape(x.shape[0], lq, c.n_heads * c.head_dim))


class T5Block(TransformerBlock):
    """A pre-norm :class:`~roadmap_lib.layers.TransformerBlock` whose attentions are T5's."""

    def __init__(self, config: BlockConfig) -> None:
        super().__init__(config)
        self.attn = T5Attention(config.attention_config(config.causal))
        if config.cross_attention:
            self.cross_attn = T5Attention(config.attention_config(False))


class T5(EncoderDecoderMixin, nn.Module):
    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.config = c = config
        self.shared = nn.Embedding(c.vocab_size, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.encoder_bias = T5RelativePositionBias(
            c.n_heads, c.num_buckets, c.max_distance, bidirectional=True
        )
        self.encoder = nn.ModuleList(T5Block(c.block_config(False)) for _ in range(c.n_layers))
        self.encoder_norm = RMSNorm(c.d_model, c.norm_eps)
        self.decoder_bias = T5RelativePositionBias(
            c.n_heads, c.num_buckets, c.max_distance, bidirectional=False
        )
        self.decoder = nn.ModuleList(
            T5Block(c.block_config(True)) for _ in range(c.n_decoder_layers)
        )
        self.decoder_norm = RMSNorm(c.d_model, c.norm_eps)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self._init_weights()
        if c.tie_word_embeddings:
            self.lm_head.weight = self.shared.weight

    @torch.no_grad()
    def _init_weights(self) -> None:
        """Mesh TensorFlow's initialisation: unit-variance embeddings, and the queries' std carries
        the d_kv^-0.5 that the scores leave out."""
        c = self.config
        nn.init.normal_(self.shared.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=1.0)
        for bias in (self.encoder_bias, self.decoder_bias):
            nn.init.normal_(bias.relative_attention_bias.weight, std=c.d_model**-0.5)
        for block in [*self.encoder, *self.decoder]:
            for attn in (block.attn, getattr(block, "cross_attn", None)):
                if attn is not None:
                    nn.init.normal_(attn.q_proj.weight, std=(c.d_model * c.d_kv) ** -0.5)
                    nn.init.normal_(attn.k_proj.weight, std=c.d_model**-0.5)
                    nn.init.normal_(attn.v_proj.weight, std=c.d_model**-0.5)
                    nn.init.normal_(attn.o_proj.weight, std=(c.n_heads * c.d_kv) ** -0.5)
            for proj in (block.ffn.gate_proj, block.ffn.up_proj):
                if proj is not None:
                    nn.init.normal_(proj.weight, std=c.d_model**-0.5)
            nn.init.normal_(block.ffn.down_proj.weight, std=c.d_ff**-0.5)

    def encode(
        self, src: torch.Tensor, src_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """src (batch, S) -> memory (batch, S, d_model)."""
        check_context(src, 0, float("inf"))  # ids only: T5 has no length limit
        x = self.drop(self.shared(src))
        bias = self.encoder_bias(src.shape[1])  # (1, heads, S, S), shared by every layer
        for block in self.encoder:
            x = block(x, key_padding_mask=src_padding_mask, attn_bias=bias)
        return self.drop(self.encoder_norm(x))

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        src_padding_mask: torch.Tensor | None = None,
        cache: list[tuple[KVCache, KVCache]] | None = None,
    ) -> torch.Tensor:
        """tgt (batch, T) -> logits (batch, T, vocab); with ``cache``, ``tgt`` holds the new tokens only."""
        check_context(tgt, 0, float("inf"))
        past = len(cache[0][0]) if cache else 0
        x = self.drop(self.shared(tgt))
        bias = self.decoder_bias(tgt.shape[1], past + tgt.shape[1], past)  # causal buckets
        x = self.drop(
            self.decoder_norm(self._run_decoder(x, memory, src_padding_mask, cache, attn_bias=bias))
        )
        if self.config.tie_word_embeddings:  # the embedding has unit scale: bring x to it
            x = x * self.config.d_model**-0.5
        return self.lm_head(x)


__all__ = ["FEED_FORWARD", "T5", "T5Attention", "T5Block", "T5Config"]
