"""BERT: a bidirectional encoder with a masked-LM head and a classification head.

    ids (+ segment ids) -> token + position + segment embeddings -> LayerNorm -> n_layers
        post-norm blocks (full self-attention, exact GELU) -> hidden states
    masked LM:       hidden -> dense -> GELU -> LayerNorm -> tied output matrix + bias -> logits
    classification:  hidden[:, 0] ([CLS]) -> dense -> tanh ("pooler") -> linear -> class logits

:mod:`roadmap_lib.models.hf` converts weights to and from transformers' ``BertForMaskedLM`` and
``BertForSequenceClassification``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..layers import BlockConfig, EncoderBlock, LayerNorm, gelu
from .gpt import check_context


@dataclass
class BertConfig:
    vocab_size: int = 30522
    context_length: int = 512
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None  # None: 4 * d_model
    type_vocab_size: int = 2
    norm_eps: float = 1e-12
    dropout: float = 0.1
    num_labels: int = 2

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads", "num_labels"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model

    def block_config(self) -> BlockConfig:
        return BlockConfig(
            d_model=self.d_model, n_heads=self.n_heads, d_ff=self.d_ff, activation="gelu",
            norm="layernorm", norm_eps=self.norm_eps, prenorm=False, bias=True,
            dropout=self.dropout, attn_dropout=self.dropout, causal=False,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = nn.Embedding(c.context_length, c.d_model)
        self.type_emb = nn.Embedding(c.type_vocab_size, c.d_model)
        self.emb_norm = LayerNorm(c.d_model, c.norm_eps)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(c.block_config()) for _ in range(c.n_layers))
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids (batch, seq) -> hidden states (batch, seq, d_model).

        ``attention_mask`` (batch, seq): 1/True for real tokens, 0/False for padding (transformers'
        convention); padded keys get no attention.
        """
        check_context(ids, 0, self.config.context_length)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(ids)
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.tok_emb(ids) + self.pos_emb(positions) + self.type_emb(token_type_ids)
        x = self.drop(self.emb_norm(x))
        padding = None if attention_mask is None else ~attention_mask.bool()
        for block in self.blocks:
            x = block(x, key_padding_mask=padding)
        return x


class BertForMaskedLM(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = c = config
        self.bert = BertEncoder(c)
        self.mlm_dense = nn.Linear(c.d_model, c.d_model)
        self.mlm_norm = LayerNorm(c.d_model, c.norm_eps)
        self.mlm_out = nn.Linear(c.d_model, c.vocab_size)
        self.mlm_out.weight = self.bert.tok_emb.weight  # tied, as in BERT
        nn.init.zeros_(self.mlm_out.bias)

    def forward(self, ids, token_type_ids=None, attention_mask=None) -> torch.Tensor:
        """ids (batch, seq) -> logits over the vocabulary (batch, seq, vocab_size)."""
        h = self.bert(ids, token_type_ids, attention_mask)
        return self.mlm_out(self.mlm_norm(gelu(self.mlm_dense(h))))


class BertForSequenceClassification(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = c = config
        self.bert = BertEncoder(c)
        self.pooler = nn.Linear(c.d_model, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.classifier = nn.Linear(c.d_model, c.num_labels)

    def forward(self, ids, token_type_ids=None, attention_mask=None) -> torch.Tensor:
        """ids (batch, seq) -> class logits (batch, num_labels), from the first ([CLS]) position."""
        h = self.bert(ids, token_type_ids, attention_mask)
        pooled = torch.tanh(self.pooler(h[:, 0]))
        return self.classifier(self.drop(pooled))


class BertForTokenClassification(nn.Module):
    """The encoder plus one linear layer at every position (sequence labelling, e.g. tagging)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BertEncoder(config)
        self.drop = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, config.num_labels)

    def forward(self, ids, token_type_ids=None, attention_mask=None) -> torch.Tensor:
        """ids (batch, seq) -> label logits (batch, seq, num_labels)."""
        return self.classifier(self.drop(self.bert(ids, token_type_ids, attention_mask)))


__all__ = ["BertConfig", "BertEncoder", "BertForMaskedLM", "BertForSequenceClassification",
           "BertForTokenClassification"]
