"""FlashAttention in plain PyTorch: the algorithm of ``flash.py`` with the same names,
for a reader to step through (and for tests that need no Triton).

* :func:`naive_attention` builds the whole ``(Lq, Lk)`` score matrix: the definition, the baseline.
* :func:`online_softmax` / :func:`online_softmax_states` are the one-row idea (Milakov and
  Gimelshein 2018): one pass keeps a running max ``m`` and a running sum ``l`` rescaled whenever
  the max grows.
* :func:`tiled_attention_forward` / :func:`tiled_attention_backward` are FlashAttention-2's
  Algorithms 1 and 2 (Dao 2023): loops over query blocks (the kernel's programs) and key/value
  blocks (the loop inside a program). Each tile is a ``(batch, heads, BLOCK_M, BLOCK_N)`` slice,
  so the ragged last tile is just a shorter slice; the kernel masks it instead.
* :class:`TiledAttention` / :func:`tiled_attention` put the two together in an autograd.Function
  whose backward is the hand-written one (so ``torch.autograd.gradcheck`` tests it). That backward
  is first order only: differentiating through it (``create_graph=True``, a gradient penalty) is
  an error (:func:`first_order_only`), not a silently wrong second derivative.

Causal attention with ``Lq != Lk`` is aligned bottom-right, as in FlashAttention >= 2.1 and
``roadmap_lib.attention.causal_mask(lq, lk, offset=lk - lq)``: query ``i`` sees keys
``j <= i + Lk - Lq`` (the last query sees every key). With ``Lq > Lk`` the first ``Lq - Lk``
queries see no key at all; their output is 0 (as in PyTorch's SDPA), their log-sum-exp is
``-inf`` and their gradients are 0.

The reference works in natural-log units (``exp``); the kernel folds ``log2 e`` into the scale and
uses ``exp2``, which is the same arithmetic. Unlike the kernel, the reference does not skip the
causal tiles that are entirely masked (that is an exercise of chapter 13).
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch

ALL_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def validate_attention_inputs(q, k, v, causal=False, scale=None, *, dtypes=ALL_DTYPES,
                              head_dims: tuple[int, int] | None = None) -> None:
    """Raise ``TypeError``/``ValueError`` naming what is wrong with attention inputs.

    q: (batch, heads, Lq, d); k, v: (batch, kv_heads, Lk, d), heads % kv_heads == 0 (causal with
    Lq != Lk is aligned bottom-right, see the module docstring); ``head_dims=(lo, hi)`` bounds d;
    ``dtypes`` lists the accepted dtypes.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4:
            raise ValueError(
                f"{name}: expected 4 dimensions (batch, heads, seq, head_dim), got shape {tuple(t.shape)}"
            )
        if t.dtype not in dtypes:
            names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
            raise ValueError(f"{name}: unsupported dtype {t.dtype}; expected one of {names}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if k.shape != v.shape:
        raise ValueError(f"v: expected the shape of k {tuple(k.shape)}, got {tuple(v.shape)}")
    batch, heads, lq, d = q.shape
    kb, kv_heads, lk, kd = k.shape
    if kb != batch:
        raise ValueError(f"k: expected batch {batch} to match q's, got {kb} (k.shape={tuple(k.shape)})")
    if kd != d:
        raise ValueError(f"k: expected head dim {d} to match q's, got {kd} (k.shape={tuple(k.shape)})")
    if head_dims is not None and not head_dims[0] <= d <= head_dims[1]:
        raise ValueError(
            f"q: unsupported head dim {d} (q.shape={tuple(q.shape)}); expected {head_dims[0]} to {head_dims[1]}"
        )
    if kv_heads == 0 or heads % kv_heads != 0:
        raise ValueError(
            f"k: the number of query heads ({heads}) must be a multiple of the number of key/value "
            f"heads, got {kv_heads} (q.shape={tuple(q.shape)}, k.shape={tuple(k.shape)})"
        )
    if lq == 0 or lk == 0:
        raise ValueError(f"q, k: sequence lengths must be positive, got Lq={lq}, Lk={lk}")
    if scale is not None and not (
        isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale) and scale > 0
    ):
        raise ValueError(f"scale: expected a positive finite number or None, got {scale!r}")


def validate_varlen_inputs(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                           scale=None, *, dtypes=ALL_DTYPES,
                           head_dims: tuple[int, int] | None = None) -> tuple[int, int]:
    """Raise ``TypeError``/``ValueError`` naming what is wrong with packed attention inputs;
    returns ``(max_seqlen_q, max_seqlen_k)`` as ints (at least 1). Reads ``cu_seqlens`` on the host.

    q: (total_q, heads, d); k, v: (total_k, kv_heads, d); ``cu_seqlens_q``/``cu_seqlens_k``: int32
    (batch + 1,) cumulative lengths from 0 to total_q/total_k; ``max_seqlen_*`` at least the
    longest sequence. ``dtypes``, ``head_dims``, ``scale`` as in :func:`validate_attention_inputs`.
    """
    for name, t in (("q", q), ("k", k), ("v", v), ("cu_seqlens_q", cu_seqlens_q),
                    ("cu_seqlens_k", cu_seqlens_k)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim != 3:
            raise ValueError(f"{name}: expected 3 dimensions (total_tokens, heads, head_dim), "
                             f"got shape {tuple(t.shape)}")
    if k.shape != v.shape:
        raise ValueError(f"v: expected the shape of k {tuple(k.shape)}, got {tuple(v.shape)}")
    (total_q, heads, d), (total_k, kv_heads, kd) = q.shape, k.shape
    if kd != d:
        raise ValueError(f"k: expected head dim {d} to match q's, got {kd} (k.shape={tuple(k.shape)})")
    if head_dims is not None and not head_dims[0] <= d <= head_dims[1]:
        raise ValueError(f"q: unsupported head dim {d} (q.shape={tuple(q.shape)}); "
                         f"expected {head_dims[0]} to {head_dims[1]}")
    if kv_heads == 0 or heads % kv_heads:
        raise ValueError(f"k: the number of query heads ({heads}) must be a multiple of the number "
                         f"of key/value heads, got {kv_heads} (q.shape={tuple(q.shape)}, "
                         f"k.shape={tuple(k.shape)})")
    if total_q == 0 or total_k == 0:
        raise ValueError(f"q, k: expected at least one token each, got {total_q} and {total_k}")
    # dtypes and scale: the dense checks, on each tensor seen as one (1, heads, tokens, d) sequence
    validate_attention_inputs(*(t.transpose(0, 1).unsqueeze(0) for t in (q, k, v)), False, scale,
                              dtypes=dtypes)
    maxima = []
    for name, cu, total, other, given in (
        ("cu_seqlens_q", cu_seqlens_q, total_q, "q", max_seqlen_q),
        ("cu_seqlens_k", cu_seqlens_k, total_k, "k", max_seqlen_k),
    ):
        if cu.dtype != torch.int32 or cu.ndim != 1:
            raise ValueError(f"{name}: expected an int32 tensor of shape (batch + 1,), got {cu.dtype} "
                             f"of shape {tuple(cu.shape)}")
        if cu.numel() != cu_seqlens_q.numel() or cu.numel() < 2:
            raise ValueError(f"{name}: expected {max(cu_seqlens_q.numel(), 2)} entries (batch + 1) "
                             f"like cu_seqlens_q, got {cu.numel()}")
        ends = cu.tolist()
        if ends[0] != 0:
            raise ValueError(f"{name}: expected cumulative lengths that start at 0, got {ends[:4]}")
        lengths = [b - a for a, b in pairwise(ends)]
        if min(lengths) < 0:
            raise ValueError(f"{name}: expected non-decreasing cumulative lengths, got {ends}")
        if ends[-1] != total:
            raise ValueError(f"{name}: expected its last entry to be {other}'s total_tokens {total}, "
                             f"got {ends[-1]}")
        max_name = name.replace("cu_seqlens", "max_seqlen")
        if isinstance(given, bool) or not isinstance(given, int) or given < max(lengths):
            raise ValueError(f"{max_name}: expected at least the longest sequence, {max(lengths)}, "
                             f"got {given!r}")
        maxima.append(max(given, 1))
    return maxima[0], maxima[1]


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def causal_keep(lq: int, lk: int, device=None) -> torch.Tensor:
    """(Lq, Lk) bool, True where query i may see key j: j <= i + Lk - Lq (bottom-right aligned)."""
    rows = torch.arange(lq, device=device)[:, None]
    return torch.arange(lk, device=device)[None, :] <= rows + (lk - lq)


def _expand_kv(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(batch, kv_heads, L, d) -> (batch, heads, L, d): query head h reads kv head h // group."""
    return t.repeat_interleave(heads // t.shape[1], dim=1)


# ----------------------------------------------------------------------- the definition
def naive_attention(q, k, v, causal: bool = False, scale: float | None = None):
    """``softmax(q kᵀ·scale) v`` with the full score matrix; returns ``(o, lse)``.

    o: (batch, heads, Lq, d) in q's dtype; lse: (batch, heads, Lq), log Σ_j exp(s_ij), in the
    accumulation dtype (float64 for float64 inputs, else float32). Differentiable.
    """
    validate_attention_inputs(q, k, v, causal, scale)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    acc = _acc_dtype(q.dtype)
    heads = q.shape[1]
    k, v = _expand_kv(k, heads).to(acc), _expand_kv(v, heads).to(acc)
    s = q.to(acc) @ k.transpose(-1, -2) * scale
    if not causal:
        lse = torch.logsumexp(s, dim=-1)
        return (torch.exp(s - lse[..., None]) @ v).to(q.dtype), lse
    keep = causal_keep(*s.shape[-2:], device=s.device)
    seen = keep.any(-1)  # False for a query that sees no key (Lq > Lk)
    s = s.masked_fill(~keep, float("-inf")).masked_fill(~seen[:, None], 0.0)  # 0: any finite row
    lse = torch.logsumexp(s, dim=-1)
    o = (torch.exp(s - lse[..., None]) @ v).masked_fill(~seen[:, None], 0.0)
    return o.to(q.dtype), lse.masked_fill(~seen, float("-inf"))


# ---------------------------------------------------------------------- online softmax
def online_softmax_states(x: torch.Tensor, block_size: int):
    """Stream the last dimension of ``x`` in blocks; return the state ``(m, l)`` after each block.

    ``m`` is the running max and ``l = Σ exp(x_j − m)`` over the entries seen so far. When a block
    raises the max from ``m`` to ``m_new``, the old sum is rescaled by ``exp(m − m_new)``.
    """
    if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"x: expected a tensor with a non-empty last dimension, got {x!r}")
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size: expected a positive int, got {block_size!r}")
    m = torch.full(x.shape[:-1], float("-inf"), dtype=x.dtype)
    l = torch.zeros(x.shape[:-1], dtype=x.dtype)
    states = []
    for start in range(0, x.shape[-1], block_size):
        block = x[..., start:start + block_size]
        m_new = torch.maximum(m, block.amax(-1))
        l = l * torch.exp(m - m_new) + torch.exp(block - m_new[..., None]).sum(-1)
        m = m_new
        states.append((m.clone(), l.clone()))
    return states


def online_softmax(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """Softmax over the last dimension from one streaming pass for ``(m, l)``, then one to normalise."""
    m, l = online_softmax_states(x, block_size)[-1]
    return torch.exp(x - m[..., None]) / l[..., None]


# --------------------------------------------------------------- FlashAttention-2, tiled
def tiled_attention_forward(q, k, v, causal: bool = False, scale: float | None = None,
                            block_m: int = 16, block_n: int = 16):
    """FlashAttention-2 forward, tile by tile; returns ``(o, lse)`` like :func:`naive_attention`."""
    validate_attention_inputs(q, k, v, causal, scale)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    acc_dtype = _acc_dtype(q.dtype)
    batch, heads, Lq, d = q.shape
    Lk = k.shape[2]
    k, v = _expand_kv(k, heads), _expand_kv(v, heads)
    o = torch.empty(batch, heads, Lq, d, dtype=q.dtype, device=q.device)
    lse = torch.empty(batch, heads, Lq, dtype=acc_dtype, device=q.device)

    for start_m in range(0, Lq, block_m):  # in the kernel: one program per query block
        q_block = q[:, :, start_m:start_m + block_m].to(acc_dtype)
        rows = torch.arange(start_m, start_m + q_block.shape[2], device=q.device)
        m_i = torch.full((batch, heads, len(rows)), float("-inf"), dtype=acc_dtype, device=q.device)
        l_i = torch.zeros_like(m_i)
        acc = torch.zeros(batch, heads, len(rows), d, dtype=acc_dtype, device=q.device)
        for start_n in range(0, Lk, block_n):  # in the kernel: the loop inside the program
            k_block = k[:, :, start_n:start_n + block_n].to(acc_dtype)
            v_block = v[:, :, start_n:start_n + block_n].to(acc_dtype)
            cols = torch.arange(start_n, start_n + k_block.shape[2], device=q.device)

            s = q_block @ k_block.transpose(-1, -2) * scale
            if causal:  # bottom-right: query i sees keys j <= i + Lk - Lq
                s = s.masked_fill(cols[None, :] > rows[:, None] + Lk - Lq, float("-inf"))

            m_new = torch.maximum(m_i, s.amax(-1))
            m_ref = m_new.masked_fill(m_new == float("-inf"), 0.0)  # a row with no key yet: 0
            alpha = torch.exp(m_i - m_ref)  # rescales what was summed under the old max
            p = torch.exp(s - m_ref[..., None])
            l_i = l_i * alpha + p.sum(-1)
            acc = acc * alpha[..., None] + p @ v_block
            m_i = m_new

        l_safe = l_i.masked_fill(l_i == 0, 1.0)  # a query that saw no key at all: output 0
        o[:, :, start_m:start_m + block_m] = (acc / l_safe[..., None]).to(q.dtype)
        lse[:, :, start_m:start_m + block_m] = m_i + torch.log(l_i)
    return o, lse


def tiled_attention_backward(do, q, k, v, o, lse, causal: bool = False, scale: float | None = None,
                             block_m: int = 16, block_n: int = 16):
    """FlashAttention-2 backward from the saved ``o`` and ``lse``; returns ``(dq, dk, dv)``.

    P is recomputed tile by tile as ``exp(s − lse)``; with ``delta_i = Σ_d dO_id O_id``,
    ``dS = P ∘ (dP − delta)``. Pass 1 (one program per key block) sums dK, dV over query blocks;
    pass 2 (one program per query block) sums dQ over key blocks.
    """
    validate_attention_inputs(q, k, v, causal, scale)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    acc_dtype = _acc_dtype(q.dtype)
    batch, heads, Lq, d = q.shape
    kv_heads, Lk = k.shape[1], k.shape[2]
    qa, doa, lse = q.to(acc_dtype), do.to(acc_dtype), lse.to(acc_dtype)
    lse = lse.masked_fill(lse == float("-inf"), float("inf"))  # a query that saw no key: P = 0
    ka, va = _expand_kv(k, heads).to(acc_dtype), _expand_kv(v, heads).to(acc_dtype)
    delta = (doa * o.to(acc_dtype)).sum(-1)

    def p_tile(start_m, start_n):
        q_block, k_block = qa[:, :, start_m:start_m + block_m], ka[:, :, start_n:start_n + block_n]
        s = q_block @ k_block.transpose(-1, -2) * scale
        p = torch.exp(s - lse[:, :, start_m:start_m + block_m, None])
        if causal:
            rows = torch.arange(start_m, start_m + q_block.shape[2], device=q.device)
            cols = torch.arange(start_n, start_n + k_block.shape[2], device=q.device)
            p = p.masked_fill(cols[None, :] > rows[:, None] + Lk - Lq, 0.0)
        return p

    dk = torch.zeros_like(ka)
    dv = torch.zeros_like(va)
    for start_n in range(0, Lk, block_n):  # pass 1: dK, dV
        v_block = va[:, :, start_n:start_n + block_n]
        for start_m in range(0, Lq, block_m):
            q_block = qa[:, :, start_m:start_m + block_m]
            do_block = doa[:, :, start_m:start_m + block_m]
            p = p_tile(start_m, start_n)
            dv[:, :, start_n:start_n + block_n] += p.transpose(-1, -2) @ do_block
            dp = do_block @ v_block.transpose(-1, -2)
            ds = p * (dp - delta[:, :, start_m:start_m + block_m, None])
            dk[:, :, start_n:start_n + block_n] += ds.transpose(-1, -2) @ q_block * scale

    dq = torch.zeros_like(qa)
    for start_m in range(0, Lq, block_m):  # pass 2: dQ
        do_block = doa[:, :, start_m:start_m + block_m]
        for start_n in range(0, Lk, block_n):
            k_block, v_block = ka[:, :, start_n:start_n + block_n], va[:, :, start_n:start_n + block_n]
            p = p_tile(start_m, start_n)
            dp = do_block @ v_block.transpose(-1, -2)
            ds = p * (dp - delta[:, :, start_m:start_m + block_m, None])
            dq[:, :, start_m:start_m + block_m] += ds @ k_block * scale

    # GQA: a key/value head's gradient is the sum over the query heads that read it (the kernel
    # loops over those heads inside one program instead).
    group = heads // kv_heads
    dk = dk.view(batch, kv_heads, group, Lk, d).sum(2)
    dv = dv.view(batch, kv_heads, group, Lk, d).sum(2)
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


class _NoDoubleBackward(torch.autograd.Function):
    """Passes a first-order backward's gradients through; differentiating them raises."""

    @staticmethod
    def forward(ctx, name, *grads):
        ctx.name = name
        return tuple(g.clone() for g in grads)

    @staticmethod
    def backward(ctx, *_):
        raise RuntimeError(
            f"{ctx.name}: double backward (differentiating its gradients, e.g. after "
            "torch.autograd.grad(..., create_graph=True) for a gradient penalty) is not supported: "
            "its backward is hand-written and first order only. Use naive_attention (plain "
            "PyTorch operations, differentiable twice) where second derivatives are needed"
        )


def first_order_only(name: str, backward, saved, grad_outputs):
    """Run ``backward(*grad_outputs)`` (a hand-written first-order backward) without recording it.

    Under ``create_graph=True`` with anything that needs gradients, the results are routed through
    a node that raises when differentiated, so a second derivative is a clear error instead of a
    wrong number (the role of ``torch.autograd.function.once_differentiable``, with our message;
    it also catches what that decorator misses: grad outputs that need no gradient while the
    saved inputs do).
    """
    with torch.no_grad():
        grads = backward(*grad_outputs)
    tensors = [t for t in (*saved, *grad_outputs) if isinstance(t, torch.Tensor)]
    if not torch.is_grad_enabled() or not any(t.requires_grad for t in tensors):
        return grads
    leaves = [g.detach().requires_grad_() for g in grads]
    return _NoDoubleBackward.apply(name, *leaves)


class TiledAttention(torch.autograd.Function):
    """The tiled forward with the hand-written tiled backward (not autograd through the loops)."""

    @staticmethod
    def forward(ctx, q, k, v, causal, scale, block_m, block_n):
        o, lse = tiled_attention_forward(q, k, v, causal, scale, block_m, block_n)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.args = (causal, scale, block_m, block_n)
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = first_order_only(
            "tiled_attention", lambda g: tiled_attention_backward(g, q, k, v, o, lse, *ctx.args),
            (q, k, v), (do,),
        )
        return dq, dk, dv, None, None, None, None


def tiled_attention(q, k, v, causal: bool = False, scale: float | None = None,
                    block_m: int = 16, block_n: int = 16) -> torch.Tensor:
    """Differentiable tiled attention (shapes as :func:`naive_attention`); returns ``o``."""
    validate_attention_inputs(q, k, v, causal, scale)
    for name, blk in (("block_m", block_m), ("block_n", block_n)):
        if not isinstance(blk, int) or blk < 1:
            raise ValueError(f"{name}: expected a positive int, got {blk!r}")
    return TiledAttention.apply(q, k, v, bool(causal), scale, block_m, block_n)


__all__ = [
    "TiledAttention", "causal_keep", "first_order_only", "naive_attention", "online_softmax", "online_softmax_states",
    "tiled_attention", "tiled_attention_backward", "tiled_attention_forward",
    "validate_attention_inputs", "validate_varlen_inputs",
]
