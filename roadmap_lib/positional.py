"""Telling attention where tokens are: absolute, relative, rotary and linear-bias positions.

Attention is permutation-equivariant: shuffle the tokens and the outputs shuffle the same way. Every
scheme here breaks that symmetry in a different place:

- absolute, added to the token embeddings: sinusoidal (Vaswani et al. 2017) and learned tables;
- relative, inside attention: Shaw et al. (2018) learn an embedding per clipped distance and add it
  to the keys (and values); T5 (Raffel et al. 2020) learns one scalar bias per head and per
  log-spaced distance bucket;
- rotary (RoPE, Su et al. 2021): rotate q and k by position; see :mod:`roadmap_lib.rope`, re-exported
  here;
- ALiBi (Press et al. 2021): no parameters, a per-head linear penalty on distance.

Shapes: ``q, k, v`` are ``(batch, heads, seq, head_dim)``; biases are ``(1, heads, q_len, k_len)``
and are added to the attention logits (the ``attn_mask`` of scaled dot-product attention).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# RoPE is part of this chapter's toolbox: re-exported so `from roadmap_lib.positional import ...` finds it.
from roadmap_lib.rope import (
    RoPEConfig,
    RotaryEmbedding,
    apply_rope,
    interleaved_to_half_permutation,
    llama3_inv_freq,
    ntk_scaled_base,
    permute_qk_weight,
    rope_angles,
    rope_cos_sin,
    rope_inv_freq,
    rotate_half,
    rotate_interleaved,
)


def _check_int(value: object, name: str, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def _positions(positions: torch.Tensor | int, name: str = "positions") -> torch.Tensor:
    if isinstance(positions, int) and not isinstance(positions, bool):
        return torch.arange(_check_int(positions, name, 0))
    if not isinstance(positions, torch.Tensor):
        raise TypeError(
            f"{name}: expected a sequence length (int) or a tensor of positions, got {type(positions).__name__}"
        )
    return positions


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name}: expected shape (batch, heads, seq, head_dim), got {got}")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"k: expected head dim {q.shape[-1]} to match q's, got {k.shape[-1]} (k.shape={tuple(k.shape)})"
        )
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"v: expected {k.shape[-2]} positions to match k's, got {v.shape[-2]} (v.shape={tuple(v.shape)})"
        )


# --- Absolute: sinusoidal and learned -------------------------------------------------------------


def sinusoidal_encoding(
    positions: torch.Tensor | int, d_model: int, base: float = 10000.0
) -> torch.Tensor:
    """Vaswani et al.'s table ``(..., seq, d_model)``: ``PE[p, 2i] = sin(p/base^(2i/d))``, ``PE[p, 2i+1] = cos(...)``.

    ``positions`` is a length (positions ``0..seq-1``) or a tensor of positions ``(seq,)``/``(batch, seq)``.
    """
    pos = _positions(positions).to(torch.float32)
    _check_int(d_model, "d_model")
    if d_model % 2:
        raise ValueError(f"d_model: expected an even number (sin/cos pairs), got {d_model}")
    inv_freq = 1.0 / base ** (torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    angles = pos[..., None] * inv_freq
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


class SinusoidalPositionalEncoding(nn.Module):
    """No parameters; ``forward(x)`` adds the table to token embeddings ``x`` ``(batch, seq, d_model)``."""

    def __init__(self, d_model: int, base: float = 10000.0):
        super().__init__()
        self.d_model, self.base = _check_int(d_model, "d_model"), base

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"x: expected shape (batch, seq, {self.d_model}), got {tuple(x.shape)}"
            )
        pe = sinusoidal_encoding(
            torch.arange(offset, offset + x.shape[1], device=x.device), self.d_model, self.base
        )
        return x + pe.to(x.dtype)


class LearnedPositionalEmbedding(nn.Module):
    """A trained table of ``max_len`` vectors (BERT, GPT-2). There is no row for position ``max_len``:
    a longer input is an error, which is exactly why it cannot extrapolate."""

    def __init__(self, max_len: int, d_model: int, init_std: float = 0.02):
        super().__init__()
        self.max_len = _check_int(max_len, "max_len")
        self.weight = nn.Parameter(torch.randn(max_len, _check_int(d_model, "d_model")) * init_std)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.weight.shape[1]:
            raise ValueError(
                f"x: expected shape (batch, seq, {self.weight.shape[1]}), got {tuple(x.shape)}"
            )
        if offset + x.shape[1] > self.max_len:
            raise ValueError(
                f"x: sequence of {x.shape[1]} tokens (offset {offset}) needs positions up to {offset + x.shape[1] - 1}, "
                f"but the learned table only has max_len={self.max_len}"
            )
        return x + self.weight[offset : offset + x.shape[1]]


# --- Relative: Shaw et al. ------------------------------------------------------------------------


def relative_positions(q_len: int, k_len: int, past: int = 0, device=None) -> torch.Tensor:
    """``(q_len, k_len)`` integer distances ``key_position - query_position``; queries start at ``past``."""
    _check_int(q_len, "q_len"), _check_int(k_len, "k_len"), _check_int(past, "past", 0)
    query = torch.arange(past, past + q_len, device=device)[:, None]
    return torch.arange(k_len, device=device)[None, :] - query


def shaw_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_k: torch.Tensor,
    rel_v: torch.Tensor | None = None,
    *,
    is_causal: bool = False,
    past: int = 0,
    scale: float | None = None,
) -> torch.Tensor:
    """Attention with Shaw et al.'s relative representations.

    ``rel_k``/``rel_v`` ``(2K+1, head_dim)`` hold one vector per clipped distance ``-K..K``; the logit is
    ``q_i·(k_j + rel_k[clip(j-i)]) · scale`` and the output is ``Σ_j a_ij (v_j + rel_v[clip(j-i)])``.
    The distance terms are computed against the small table and gathered, never as an
    ``(Lq, Lk, d)`` tensor. Returns ``(batch, heads, q_len, v_dim)``.
    """
    _check_qkv(q, k, v)
    n_rel = rel_k.shape[0] if rel_k.ndim == 2 else -1
    if n_rel < 1 or n_rel % 2 == 0 or rel_k.shape[1] != q.shape[-1]:
        raise ValueError(f"rel_k: expected shape (2K+1, {q.shape[-1]}), got {tuple(rel_k.shape)}")
    if rel_v is not None and rel_v.shape != (n_rel, v.shape[-1]):
        raise ValueError(
            f"rel_v: expected shape ({n_rel}, {v.shape[-1]}), got {tuple(rel_v.shape)}"
        )
    max_distance = n_rel // 2
    q_len, k_len = q.shape[-2], k.shape[-2]
    index = (
        relative_positions(q_len, k_len, past, q.device).clamp(-max_distance, max_distance)
        + max_distance
    )
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    q_rel = q @ rel_k.T  # (b, h, Lq, 2K+1): each query against every distance vector
    logits = (
        q @ k.transpose(-1, -2) + q_rel.gather(-1, index.expand(*q.shape[:2], -1, -1))
    ) * scale
    if is_causal:
        future = torch.ones(q_len, k_len, dtype=torch.bool, device=q.device).triu(1 + past)
        logits = logits.masked_fill(future, float("-inf"))
    weights = logits.softmax(dim=-1)
    out = weights @ v
    if rel_v is not None:  # sum the weights that share a distance, then look the vectors up once
        per_distance = torch.zeros(
            *weights.shape[:-1], n_rel, dtype=weights.dtype, device=weights.device
        )
        per_distance.scatter_add_(-1, index.expand_as(weights), weights)
        out = out + per_distance @ rel_v
    return out


class ShawRelativePosition(nn.Module):
    """Learned key (and optionally value) vectors for distances clipped to ``±max_distance``, shared by heads."""

    def __init__(
        self, head_dim: int, max_distance: int, values: bool = True, init_std: float = 0.02
    ):
        super().__init__()
        n = 2 * _check_int(max_distance, "max_distance") + 1
        self.rel_k = nn.Parameter(torch.randn(n, _check_int(head_dim, "head_dim")) * init_std)
        self.rel_v = nn.Parameter(torch.randn(n, head_dim) * init_std) if values else None

    def forward(self, q, k, v, is_causal: bool = False, past: int = 0) -> torch.Tensor:
        return shaw_attention(q, k, v, self.rel_k, self.rel_v, is_causal=is_causal, past=past)


# --- Relative: T5 buckets -------------------------------------------------------------------------


def t5_relative_position_bucket(
    relative_position: torch.Tensor,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> torch.Tensor:
    """Map distances ``key - query`` to buckets in ``[0, num_buckets)``.

    Half of the buckets (per direction, if ``bidirectional``) are exact distances ``0..n/2-1``; the
    rest split ``[n/2, max_distance)`` logarithmically; everything farther shares the last bucket.
    Causal (``bidirectional=False``) maps all future keys to bucket 0 with the distance 0.
    """
    _check_int(num_buckets, "num_buckets", 2)
    _check_int(max_distance, "max_distance", 1)
    if relative_position.is_floating_point():
        raise TypeError(
            f"relative_position: expected an integer tensor, got {relative_position.dtype}"
        )
    bucket = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp_min(0)
    max_exact = num_buckets // 2
    if max_distance <= max_exact:
        raise ValueError(
            f"max_distance: expected more than the {max_exact} exact buckets, got {max_distance}"
        )
    log_ratio = torch.log(distance.float().clamp_min(1) / max_exact) / math.log(
        max_distance / max_exact
    )
    far = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp_max(num_buckets - 1)
    return bucket + torch.where(distance < max_exact, distance, far)


class T5RelativePositionBias(nn.Module):
    """One learned scalar per (bucket, head); ``forward(q_len, k_len)`` gives the ``(1, heads, q_len, k_len)`` bias."""

    def __init__(
        self,
        num_heads: int,
        num_buckets: int = 32,
        max_distance: int = 128,
        bidirectional: bool = True,
    ):
        super().__init__()
        self.num_buckets, self.max_distance, self.bidirectional = (
            num_buckets,
            max_distance,
            bidirectional,
        )
        self.relative_attention_bias = nn.Embedding(
            _check_int(num_buckets, "num_buckets", 2), _check_int(num_heads, "num_heads")
        )

    def forward(self, q_len: int, k_len: int | None = None, past: int = 0) -> torch.Tensor:
        k_len = q_len if k_len is None else k_len
        rel = relative_positions(q_len, k_len, past, self.relative_attention_bias.weight.device)
        buckets = t5_relative_position_bucket(
            rel, self.bidirectional, self.num_buckets, self.max_distance
        )
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)


# --- ALiBi ----------------------------------------------------------------------------------------


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """Press et al.'s head slopes, float32 ``(num_heads,)``.

    For ``n`` a power of two: the geometric sequence ``2^(-8/n), 2^(-16/n), ..., 2^(-8)``. Otherwise,
    take the slopes of the largest power of two ``m < n`` and add every other slope of ``2m``
    (its odd-numbered ones) until there are ``n``.
    """
    _check_int(num_heads, "num_heads")

    def geometric(n: int) -> torch.Tensor:
        return 2.0 ** (-8.0 / n * torch.arange(1, n + 1, dtype=torch.float64))

    m = 2 ** math.floor(math.log2(num_heads))
    slopes = geometric(m)
    if m != num_heads:
        slopes = torch.cat((slopes, geometric(2 * m)[0::2][: num_heads - m]))
    return slopes.float()


def alibi_bias(num_heads: int, q_len: int, k_len: int | None = None, past: int = 0) -> torch.Tensor:
    """``(1, heads, q_len, k_len)`` bias ``-slope_h · |key_pos - query_pos|``; queries start at ``past``.

    Causal attention only sees ``key ≤ query``, where this is ``-slope·(query - key)``; BLOOM adds
    ``slope·key`` instead, which differs by ``slope·query`` per row and so gives the same softmax.
    """
    k_len = q_len if k_len is None else k_len
    distance = relative_positions(q_len, k_len, past).abs().float()
    return -(alibi_slopes(num_heads)[:, None, None] * distance).unsqueeze(0)


__all__ = [
    "LearnedPositionalEmbedding",
    "RoPEConfig",
    "RotaryEmbedding",
    "ShawRelativePosition",
    "SinusoidalPositionalEncoding",
    "T5RelativePositionBias",
    "alibi_bias",
    "alibi_slopes",
    "apply_rope",
    "interleaved_to_half_permutation",
    "llama3_inv_freq",
    "ntk_scaled_base",
    "permute_qk_weight",
    "relative_positions",
    "rope_angles",
    "rope_cos_sin",
    "rope_inv_freq",
    "rotate_half",
    "rotate_interleaved",
    "shaw_attention",
    "sinusoidal_encoding",
    "t5_relative_position_bucket",
]
