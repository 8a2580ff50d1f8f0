"""Sparse attention patterns, computed block by block so that the work falls with the pattern.

A pattern says which key ``j`` query ``i`` may see. Four families:

- ``"window"``: a sliding window, ``i - window < j <= i`` (causal) or ``|i - j| < window``;
- ``"dilated"``: every ``dilation``-th key inside a window of ``window`` such keys
  (``(i - j) % dilation == 0``);
- ``"longformer"``: a window plus ``n_global`` global tokens (the first ones), which see and are
  seen by every token (Beltagy et al. 2020);
- ``"bigbird"``: Longformer's window and globals plus ``n_random`` random key *blocks* per query
  block (Zaheer et al. 2020).

:func:`block_sparse_attention` cuts the sequence into blocks of ``block`` tokens, asks the pattern
which key blocks each query block touches (its *layout*, computed from the pattern's parameters
without ever building an ``L x L`` mask), gathers only those key blocks, and applies the
token-level pattern inside them. The work and memory are ``O(L * keys per query block)``; rows of
the layout that are (nearly) full, the global tokens' rows, are computed densely, which costs
``O(n_global * L)``. :func:`dense_masked_attention` is the reference: full scores with the same
mask, equal to the block-sparse result within rounding.

A dilated pattern touches, at block granularity, every block its span covers: in this block-sparse
form it costs as much as a window as wide as its span (a real saving needs strided gathers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

KINDS = ("window", "dilated", "longformer", "bigbird")


@dataclass(frozen=True)
class SparsePattern:
    """Which keys each query may see. ``block`` is the granularity of the block-sparse computation
    (and of BigBird's random blocks)."""

    kind: str = "window"
    window: int = 64
    block: int = 32
    dilation: int = 1
    n_global: int = 0
    n_random: int = 0
    causal: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {self.kind!r}")
        for name in ("window", "block", "dilation"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        for name in ("n_global", "n_random"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name}: expected an int >= 0, got {v!r}")
        if self.kind != "dilated" and self.dilation != 1:
            raise ValueError(f"dilation: only the 'dilated' pattern has one, got {self.dilation} for {self.kind!r}")
        if self.kind in ("window", "dilated") and self.n_global:
            raise ValueError(f"n_global: the {self.kind!r} pattern has no global tokens, got {self.n_global}")
        if self.kind != "bigbird" and self.n_random:
            raise ValueError(f"n_random: only 'bigbird' has random blocks, got {self.n_random} for {self.kind!r}")

    # -- the pattern, token by token -----------------------------------------------------------

    def check_length(self, L: int) -> None:
        """Raise ``ValueError`` unless a sequence of ``L`` tokens fits this pattern."""
        if not isinstance(L, int) or L < 1:
            raise ValueError(f"L: expected a positive int, got {L!r}")
        if L % self.block:
            raise ValueError(f"L: the sequence length {L} is not a multiple of block={self.block}; "
                             "pad the sequence or choose a block that divides it")
        if self.n_global > L:
            raise ValueError(f"n_global: {self.n_global} global tokens do not fit a sequence of {L}")
        if self.window > L and self.kind != "dilated":
            raise ValueError(f"window: {self.window} is longer than the sequence ({L}); use dense attention")

    def random_blocks(self, n_blocks: int) -> torch.Tensor:
        """``(n_blocks, n_random)`` random key-block ids per query block (-1 = none), from ``seed``.
        Causal patterns draw only earlier blocks."""
        g = torch.Generator().manual_seed(self.seed)
        out = torch.full((n_blocks, self.n_random), -1, dtype=torch.long)
        for qb in range(n_blocks):
            pool = qb if self.causal else n_blocks
            if pool and self.n_random:
                pick = torch.randperm(pool, generator=g)[: self.n_random]
                out[qb, : len(pick)] = pick
        return out

    def allowed(self, i: torch.Tensor, j: torch.Tensor, L: int) -> torch.Tensor:
        """Boolean 'may attend' for broadcastable query positions ``i`` and key positions ``j``."""
        d = i - j
        if self.kind == "dilated":
            ok = (d % self.dilation == 0) & (d.abs() < self.window * self.dilation)
        else:
            ok = d.abs() < self.window
        if self.n_global:
            ok = ok | (i < self.n_global) | (j < self.n_global)
        if self.n_random:
            rb = self.random_blocks(L // self.block)  # (n_blocks, n_random)
            hit = (rb[i // self.block] == (j // self.block).unsqueeze(-1)).any(-1)
            ok = ok | hit
        if self.causal:
            ok = ok & (d >= 0)
        return ok

    def mask(self, L: int) -> torch.Tensor:
        """The dense ``(L, L)`` boolean mask (for the reference and for plots)."""
        self.check_length(L)
        pos = torch.arange(L)
        return self.allowed(pos[:, None], pos[None, :], L)

    # -- the pattern, block by block -----------------------------------------------------------

    def layout(self, L: int) -> torch.Tensor:
        """``(n_blocks, n_blocks)`` boolean: may query block ``a`` see anything in key block ``b``?
        Computed from the parameters (a superset test on block ranges), never from an L x L mask."""
        self.check_length(L)
        nb, bs = L // self.block, self.block
        a = torch.arange(nb)[:, None]
        b = torch.arange(nb)[None, :]
        span = self.window * self.dilation if self.kind == "dilated" else self.window
        # blocks hold i in [a*bs, a*bs+bs-1] and j in [b*bs, b*bs+bs-1]: the smallest |i - j| between them
        gap = ((a - b).abs() * bs - (bs - 1)).clamp(min=0)
        out = gap < span
        if self.n_global:
            g_blocks = math.ceil(self.n_global / bs)
            out = out | (a < g_blocks) | (b < g_blocks)
        if self.n_random:
            rb = self.random_blocks(nb)
            out = out | (rb[:, None, :] == b.unsqueeze(-1)).any(-1)
        if self.causal:
            out = out & (b <= a)
        return out


# -- attention -----------------------------------------------------------------------------------


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.ndim != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"q, k, v: expected (batch, heads, L, d) with one shape for q and k, got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")


def dense_masked_attention(q, k, v, pattern: SparsePattern, scale: float | None = None) -> torch.Tensor:
    """softmax(q kᵀ · scale, masked by ``pattern``) v with full ``L x L`` scores: the reference.

    q, k: ``(batch, heads, L, d)``; v: ``(batch, heads, L, dv)``; returns ``(batch, heads, L, dv)``.
    """
    _check(q, k, v)
    L = q.shape[2]
    mask = pattern.mask(L).to(q.device)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q @ k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def block_sparse_attention(q, k, v, pattern: SparsePattern, scale: float | None = None,
                           dense_row_fraction: float = 0.5) -> torch.Tensor:
    """The same result as :func:`dense_masked_attention`, computing only the blocks the pattern uses.

    q, k: ``(batch, heads, L, d)``; v: ``(batch, heads, L, dv)``; ``L`` a multiple of
    ``pattern.block``. Query blocks that touch more than ``dense_row_fraction`` of the key blocks
    (the global tokens' rows) are computed against all keys; every other query block gathers its
    key blocks (padded to the largest count, padding masked out).
    """
    _check(q, k, v)
    B, H, L, d = q.shape
    dv = v.shape[-1]
    layout = pattern.layout(L).to(q.device)
    nb, bs = layout.shape[0], pattern.block
    scale = d**-0.5 if scale is None else scale
    out = q.new_zeros(B, H, L, dv)
    pos = torch.arange(L, device=q.device)
    counts = layout.sum(1)
    dense_rows = (counts > dense_row_fraction * nb).nonzero().flatten()
    sparse_rows = (counts <= dense_row_fraction * nb).nonzero().flatten()

    if len(dense_rows):  # few rows against every key: O(rows * L)
        qi = (dense_rows[:, None] * bs + torch.arange(bs, device=q.device)).flatten()
        s = (q[:, :, qi] @ k.transpose(-1, -2)) * scale
        s = s.masked_fill(~pattern.allowed(qi[:, None], pos[None, :], L), float("-inf"))
        out[:, :, qi] = torch.softmax(s, dim=-1) @ v

    if len(sparse_rows):
        K = int(counts[sparse_rows].max())
        # for each sparse query block, the ids of its key blocks, valid ones first
        order = torch.sort(layout[sparse_rows].to(torch.int8), dim=1, descending=True, stable=True).indices
        idx = order[:, :K]  # (R, K)
        valid = torch.gather(layout[sparse_rows], 1, idx)  # (R, K)
        R = len(sparse_rows)
        qb = q.view(B, H, nb, bs, d)[:, :, sparse_rows]  # (B, H, R, bs, d)
        kb = k.view(B, H, nb, bs, d)[:, :, idx].reshape(B, H, R, K * bs, d)
        vb = v.view(B, H, nb, bs, dv)[:, :, idx].reshape(B, H, R, K * bs, dv)
        qi = sparse_rows[:, None] * bs + torch.arange(bs, device=q.device)  # (R, bs)
        kj = (idx[:, :, None] * bs + torch.arange(bs, device=q.device)).reshape(R, K * bs)
        ok = pattern.allowed(qi[:, :, None], kj[:, None, :], L)  # (R, bs, K*bs)
        ok = ok & valid.repeat_interleave(bs, dim=1)[:, None, :]
        s = (qb @ kb.transpose(-1, -2)) * scale  # (B, H, R, bs, K*bs)
        s = s.masked_fill(~ok, float("-inf"))
        o = torch.softmax(s, dim=-1) @ vb  # (B, H, R, bs, dv)
        out.view(B, H, nb, bs, dv)[:, :, sparse_rows] = o
    return out


def attended_pairs(pattern: SparsePattern, L: int) -> tuple[int, int]:
    """``(pairs the pattern allows, query-key pairs the block-sparse form computes)``."""
    layout = pattern.layout(L)
    computed = int(layout.sum()) * pattern.block**2
    return int(pattern.mask(L).sum()), computed


__all__ = ["KINDS", "SparsePattern", "attended_pairs", "block_sparse_attention", "dense_masked_attention"]
