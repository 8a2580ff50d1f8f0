"""Long inputs: attention that never holds the whole L×L score matrix, and loss by position.

**Chunked (query-blocked) attention.** Softmax normalises each *row* of the score matrix on its
own, so the rows can be computed a block at a time: for queries ``i..i+B`` take scores against all
keys ``(B, L)``, softmax, multiply by ``V``, and move on. The output is exactly full attention's,
but the largest temporary is ``B×L`` instead of ``L×L`` per head: memory grows linearly in ``L``
(time is still quadratic). With a causal mask a query block needs only the keys up to its last
position. FlashAttention (chapter 13) also blocks the keys, with an online softmax; this is the
simpler half of that idea (Rabe & Staats 2021 call it "memory-efficient attention").

**Loss by position.** A language model's loss at position ``t`` averaged over many windows tells
how well it uses ``t`` tokens of context, and whether it breaks past the length it was trained on
(the curve jumps up there). :func:`loss_per_position` gives the curve, :func:`bin_mean` smooths it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name}: expected shape (batch, heads, seq, dim), got {got}")
    if k.shape != v.shape[:-1] + (k.shape[-1],) or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"k, v: expected (batch, heads, seq_k, dim) matching q {tuple(q.shape)}, got "
                         f"k {tuple(k.shape)} and v {tuple(v.shape)}")


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
                      block_size: int = 128, scale: float | None = None) -> torch.Tensor:
    """``softmax(q kᵀ · scale) v`` one block of ``block_size`` queries at a time.

    ``q`` ``(batch, heads, Lq, d)``, ``k``/``v`` ``(batch, heads, Lk, d)`` -> ``(batch, heads, Lq, d)``.
    With ``causal=True`` query ``i`` sees keys ``0..i + (Lk - Lq)`` (the queries are the last ``Lq``
    positions, as with a KV cache: bottom-right aligned; for ``Lq == Lk`` the usual causal mask).
    """
    _check_qkv(q, k, v)
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size: expected an int >= 1, got {block_size!r}")
    lq, lk = q.shape[-2], k.shape[-2]
    if causal and lk < lq:
        raise ValueError(f"k: a causal mask needs at least as many keys as queries, got Lk={lk} < Lq={lq}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    offset = lk - lq
    out = torch.empty(q.shape[:-1] + (v.shape[-1],), dtype=q.dtype, device=q.device)
    for start in range(0, lq, block_size):
        stop = min(start + block_size, lq)
        keys = offset + stop if causal else lk  # later keys are all masked for this block
        s = q[:, :, start:stop] @ k[:, :, :keys].transpose(-2, -1) * scale
        if causal:
            rows = torch.arange(start, stop, device=q.device)[:, None] + offset
            s = s.masked_fill(torch.arange(keys, device=q.device) > rows, float("-inf"))
        out[:, :, start:stop] = torch.softmax(s, dim=-1) @ v[:, :, :keys]
    return out


@torch.no_grad()
def loss_per_position(model, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss at each position: ``ids`` ``(batch, L + 1)`` -> ``(L,)``, in nats.

    ``model(ids[:, :-1])`` must return logits ``(batch, L, vocab)``."""
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.shape[1] < 2:
        raise ValueError(f"ids: expected shape (batch, L + 1) with L >= 1, got "
                         f"{tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__}")
    logits = model(ids[:, :-1])
    loss = F.cross_entropy(logits.transpose(1, 2).float(), ids[:, 1:], reduction="none")
    return loss.mean(0)


def bin_mean(values: torch.Tensor, width: int) -> torch.Tensor:
    """Means of consecutive bins of ``width`` values of a 1-D tensor (a last partial bin is dropped)."""
    if values.ndim != 1:
        raise ValueError(f"values: expected a 1-D tensor, got shape {tuple(values.shape)}")
    if not isinstance(width, int) or not 1 <= width <= len(values):
        raise ValueError(f"width: expected an int in [1, {len(values)}], got {width!r}")
    n = len(values) // width
    return values[: n * width].reshape(n, width).mean(1)


__all__ = ["bin_mean", "chunked_attention", "loss_per_position"]
