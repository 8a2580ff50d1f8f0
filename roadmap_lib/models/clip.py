"""A CLIP-style dual encoder (Radford et al. 2021): images and captions mapped into one space.

    image   -> ViT encoder -> hidden[:, 0] ([CLS]) -> linear projection -> L2-normalise -> u_i
    caption -> token + position embeddings -> causal pre-norm blocks -> LayerNorm
            -> hidden at the end-of-text token -> linear projection -> L2-normalise -> v_j
    logits[i, j] = exp(t) · <u_i, v_j>, t a learned log-temperature (clamped so exp(t) <= 100)

Trained with the symmetric InfoNCE loss :func:`clip_loss`: in a batch of n matching pairs, the
i-th image must pick the i-th caption among the n (cross-entropy over each row) and the i-th caption
the i-th image (over each column); the loss is the mean of the two. It equals transformers'
``image_text_contrastive_loss`` on the same logits (tests/test_models_clip.py).

Zero-shot classification is retrieval: write one caption per class, embed them once, and give each
image the class whose caption scores highest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import BlockConfig, LayerNorm, TransformerBlock
from .vit import ViTConfig, ViTEncoder


@dataclass
class TextConfig:
    vocab_size: int = 16
    context_length: int = 12
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int | None = None
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model


@dataclass
class CLIPConfig:
    vision: ViTConfig = field(default_factory=ViTConfig)
    text: TextConfig = field(default_factory=TextConfig)
    embed_dim: int = 32
    logit_scale_init: float = math.log(1 / 0.07)  # CLIP's initial temperature 0.07
    max_logit_scale: float = 100.0

    def to_dict(self) -> dict:
        return asdict(self)


class TextEncoder(nn.Module):
    """ids (batch, L) -> hidden states (batch, L, d_model); causal, as CLIP's text transformer."""

    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = nn.Embedding(c.context_length, c.d_model)
        block = BlockConfig(d_model=c.d_model, n_heads=c.n_heads, d_ff=c.d_ff, activation="gelu",
                            norm="layernorm", norm_eps=c.norm_eps, prenorm=True, causal=True)
        self.blocks = nn.ModuleList(TransformerBlock(block) for _ in range(c.n_layers))
        self.norm = LayerNorm(c.d_model, c.norm_eps)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        c = self.config
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.dtype != torch.int64:
            raise ValueError(f"ids: expected an int64 tensor (batch, seq), got "
                             f"{getattr(ids, 'dtype', type(ids).__name__)} {tuple(getattr(ids, 'shape', ()))}")
        if ids.shape[1] > c.context_length:
            raise ValueError(f"ids: expected at most {c.context_length} tokens, got {ids.shape[1]}")
        x = self.tok_emb(ids) + self.pos_emb(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class CLIP(nn.Module):
    """Image and text towers with projections into a shared ``embed_dim``-dimensional space."""

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__()
        self.config = c = config
        self.vision = ViTEncoder(c.vision)
        self.text = TextEncoder(c.text)
        self.image_proj = nn.Linear(c.vision.d_model, c.embed_dim, bias=False)
        self.text_proj = nn.Linear(c.text.d_model, c.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(c.logit_scale_init)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(batch, C, H, W) -> unit vectors (batch, embed_dim)."""
        return F.normalize(self.image_proj(self.vision(images)[:, 0]), dim=-1)

    def encode_text(self, ids: torch.Tensor, eot_positions: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, L) -> unit vectors (batch, embed_dim), read at each caption's end-of-text token
        (``eot_positions`` (batch,); default: the last position)."""
        h = self.text(ids)
        if eot_positions is None:
            eot_positions = torch.full((ids.shape[0],), ids.shape[1] - 1, dtype=torch.long)
        pooled = h[torch.arange(ids.shape[0]), eot_positions]
        return F.normalize(self.text_proj(pooled), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=self.config.max_logit_scale)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """logits_per_image (n_images, n_texts) = exp(t) · image_embeds @ text_embeds.T."""
        return self.scale() * self.encode_image(images) @ self.encode_text(ids).T


def clip_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE on a square (n, n) logit matrix whose diagonal holds the matching pairs:
    the mean of the cross-entropy over rows (image -> caption) and over columns (caption -> image)."""
    if not isinstance(logits_per_image, torch.Tensor) or logits_per_image.ndim != 2 \
            or logits_per_image.shape[0] != logits_per_image.shape[1]:
        raise ValueError(f"logits_per_image: expected a square (n, n) tensor, got "
                         f"{tuple(getattr(logits_per_image, 'shape', ()))}")
    target = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    return (F.cross_entropy(logits_per_image, target) + F.cross_entropy(logits_per_image.T, target)) / 2


def recall_at_k(scores: torch.Tensor, k: int) -> float:
    """Fraction of rows whose matching column (the diagonal) is among their ``k`` highest scores;
    ``scores`` (n, n). Ties count against the match (the match must beat every tied rival)."""
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores: expected a square (n, n) tensor, got {tuple(scores.shape)}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected an int >= 1, got {k!r}")
    diag = scores.diagonal().unsqueeze(1)
    rank = (scores >= diag).sum(1) - 1  # others scoring at least as high as the match
    return (rank < k).float().mean().item()


__all__ = ["CLIP", "CLIPConfig", "TextConfig", "TextEncoder", "clip_loss", "recall_at_k"]
