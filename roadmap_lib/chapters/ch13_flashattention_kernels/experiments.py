"""The experiments of chapter 13: an attention implementation against PyTorch's, and the accuracy
of 16-bit attention computed naively or with float32 accumulators.

The attention implementation is passed in (``attention_fn(q, k, v, causal=...) -> o``), so this
module never imports the Triton kernels itself: a notebook must switch on Triton's interpreter
before the kernels are imported, and it decides when that happens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from roadmap_lib.kernels.reference import naive_attention


def errors_against_sdpa(attention_fn, heads: int, kv_heads: int, causal: bool, dtype: torch.dtype,
                        n: int = 40, d: int = 32, batch: int = 2, seed: int = 0) -> dict[str, float]:
    """Max |error| of ``o, dq, dk, dv`` of ``attention_fn`` against float32 SDPA on the same inputs."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, h, n, d, generator=g).to(dtype).requires_grad_() for h in (heads, kv_heads, kv_heads))
    do = torch.randn(batch, heads, n, d, generator=g).to(dtype)
    o = attention_fn(q, k, v, causal=causal)
    grads = torch.autograd.grad(o, (q, k, v), do)
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    o_ref = F.scaled_dot_product_attention(q32, k32, v32, is_causal=causal, enable_gqa=heads != kv_heads)
    grads_ref = torch.autograd.grad(o_ref, (q32, k32, v32), do.float())
    return {name: (a.float() - b).abs().max().item()
            for name, a, b in zip(("o", "dq", "dk", "dv"), (o, *grads), (o_ref, *grads_ref))}


def naive_half_attention(q, k, v, causal: bool = False):
    """Attention computed entirely in the inputs' 16-bit type: S and P are rounded when stored,
    as in a three-kernel implementation that keeps them in HBM. q, k, v: (batch, heads, N, d)."""
    n = q.shape[-2]
    s = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(q.shape[-1]))
    if causal:
        s = s.masked_fill(torch.ones(n, k.shape[-2], dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.softmax(s, -1) @ v


def half_precision_errors(attention_fn, lengths, d: int = 64, heads: int = 2, seed: int = 0,
                          dtype: torch.dtype = torch.float16) -> dict[str, list[float]]:
    """Mean |error| against float64, on the same 16-bit causal inputs, of ``attention_fn`` and of
    :func:`naive_half_attention`, for each sequence length. Queries are drawn with std 2 so that
    the softmax is peaked, as in trained models."""
    g = torch.Generator().manual_seed(seed)
    out = {"lengths": list(lengths), "kernel": [], "naive": []}
    for n in lengths:
        q, k, v = (torch.randn(1, heads, n, d, generator=g) * s for s in (2.0, 1.0, 1.0))
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
        exact, _ = naive_attention(q.double(), k.double(), v.double(), causal=True)
        out["kernel"].append((attention_fn(q, k, v, causal=True).double() - exact).abs().mean().item())
        out["naive"].append((naive_half_attention(q, k, v, causal=True).double() - exact).abs().mean().item())
    return out


__all__ = ["errors_against_sdpa", "half_precision_errors", "naive_half_attention"]
