"""FlashAttention-2 in Triton: forward and backward, causal or not, MHA/GQA/MQA, any length.

Shapes: ``q`` is ``(batch, heads, Lq, d)``; ``k`` and ``v`` are ``(batch, kv_heads, Lk, d)`` with
``heads % kv_heads == 0`` (query head ``h`` reads key/value head ``h // (heads // kv_heads)``, as
``repeat_interleave`` and PyTorch's ``enable_gqa`` do). ``16 <= d <= 128``; float32, float16 or
bfloat16; every product is accumulated in float32.

Three kernels, one program per tile (Dao 2023, Algorithms 1 and 2):

* ``_attn_fwd``: one program per (query block, batch·head). It streams key/value blocks past its
  query block, keeps the online-softmax state ``m_i`` (running max), ``l_i`` (running sum) and ``acc``
  (unnormalised output) in registers, and writes ``O`` and the log-sum-exp ``lse = m + log l`` once.
* ``_attn_bwd_dkdv``: one program per (key block, batch·kv_head). It recomputes ``P`` from ``Q``,
  ``K`` and the saved ``lse``, and accumulates ``dK`` and ``dV`` over every query block *of every
  query head that shares this key/value head* — so GQA needs no atomics and is deterministic.
* ``_attn_bwd_dq``: one program per (query block, batch·head), accumulating ``dQ`` over key blocks.

``_attn_bwd_preprocess`` computes ``delta_i = sum_d dO_id O_id`` (= ``rowsum(dP ∘ P)``) first.

The kernels work in base 2: ``exp(x) = exp2(x·log2 e)``, so the softmax scale is folded into one
multiply ``qk_scale = scale·log2 e`` and the exponentials are the hardware's ``exp2``. The saved
``lse`` is in natural log units (comparable with ``torch.logsumexp``).

The pure-PyTorch version of the same algorithm, with the same names, is ``reference.py``.
"""

from __future__ import annotations

import functools
import math

import torch
import triton
import triton.language as tl

from ._triton_env import INTERPRET, check_device, compute_dtype, use_autotune
from .reference import validate_attention_inputs

LOG2E = 1.4426950408889634  # log2(e)
LN2 = 0.6931471805599453  # ln(2)

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MIN_HEAD_DIM, MAX_HEAD_DIM = 16, 128
#: Block sizes used without autotuning (the interpreter, or a GPU run with autotune off).
FIXED_BLOCK_M, FIXED_BLOCK_N = 32, 32


# ----------------------------------------------------------------------------------- forward
@triton.jit
def _attn_fwd(
    Q, K, V, O, LSE,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    n_heads, group, Lq, Lk, head_dim, qk_scale,
    CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b, h = bh // n_heads, bh % n_heads
    kvh = h // group  # the key/value head this query head reads

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < head_dim

    q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd
    q_block = tl.load(q_ptrs, mask=(offs_m[:, None] < Lq) & mask_d[None, :], other=0.0)
    k_base = K + b * stride_kb + kvh * stride_kh
    v_base = V + b * stride_vb + kvh * stride_vh

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # running row max (base-2 units)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)  # running sum of exp2(s - m_i)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)  # running sum of exp2(s - m_i) @ v

    # Causal: key blocks entirely to the right of this query block are all masked; skip them.
    hi = tl.minimum(Lk, start_m + BLOCK_M) if CAUSAL else Lk
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        k_ptrs = k_base + cols[:, None] * stride_kn + offs_d[None, :] * stride_kd
        v_ptrs = v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd
        kv_mask = (cols[:, None] < Lk) & mask_d[None, :]
        k_block = tl.load(k_ptrs, mask=kv_mask, other=0.0)
        v_block = tl.load(v_ptrs, mask=kv_mask, other=0.0)

        s = tl.dot(q_block, tl.trans(k_block), input_precision=DOT_PRECISION) * qk_scale
        keep = cols[None, :] < Lk
        if CAUSAL:
            keep = keep & (cols[None, :] <= offs_m[:, None])
        s = tl.where(keep, s, float("-inf"))

        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)  # rescales what was summed under the old max
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v_block.dtype), v_block, input_precision=DOT_PRECISION)
        m_i = m_new

    o_block = acc / l_i[:, None]
    o_ptrs = O + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od
    tl.store(o_ptrs, o_block.to(O.dtype.element_ty), mask=(offs_m[:, None] < Lq) & mask_d[None, :])
    lse = (m_i + tl.log2(l_i)) * 0.6931471805599453  # back to natural log
    tl.store(LSE + bh * Lq + offs_m, lse, mask=offs_m < Lq)


# ---------------------------------------------------------------------------------- backward
@triton.jit
def _attn_bwd_preprocess(
    O, DO, DELTA,
    stride_ob, stride_oh, stride_om, stride_od,
    n_heads, Lq, head_dim,
    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b, h = bh // n_heads, bh % n_heads
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_m[:, None] < Lq) & (offs_d[None, :] < head_dim)
    offs = b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od
    o = tl.load(O + offs, mask=mask, other=0.0).to(tl.float32)
    do = tl.load(DO + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(DELTA + bh * Lq + offs_m, tl.sum(o * do, 1), mask=offs_m < Lq)


@triton.jit
def _attn_bwd_dkdv(
    Q, K, V, DO, LSE, DELTA, DK, DV,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    n_heads, n_kv_heads, group, Lq, Lk, head_dim, scale,
    CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # Q, DO share strides (q-shaped); K, V, DK, DV share strides (kv-shaped); all contiguous.
    start_n = tl.program_id(0) * BLOCK_N
    bkv = tl.program_id(1)
    b, kvh = bkv // n_kv_heads, bkv % n_kv_heads
    qk_scale = scale * 1.4426950408889634

    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < head_dim
    kv_offs = b * stride_kb + kvh * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kd
    kv_mask = (offs_n[:, None] < Lk) & mask_d[None, :]
    k_block = tl.load(K + kv_offs, mask=kv_mask, other=0.0)
    v_block = tl.load(V + kv_offs, mask=kv_mask, other=0.0)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)

    # Causal: query blocks that end before this key block see none of it; start at the diagonal.
    lo = (start_n // BLOCK_M) * BLOCK_M if CAUSAL else 0
    for g in range(group):  # every query head that reads this key/value head: no atomics
        h = kvh * group + g
        q_base = Q + b * stride_qb + h * stride_qh
        do_base = DO + b * stride_qb + h * stride_qh
        row_base = (b * n_heads + h) * Lq
        for start_m in range(lo, Lq, BLOCK_M):
            rows = start_m + offs_m
            q_offs = rows[:, None] * stride_qm + offs_d[None, :] * stride_qd
            q_mask = (rows[:, None] < Lq) & mask_d[None, :]
            q_block = tl.load(q_base + q_offs, mask=q_mask, other=0.0)
            do_block = tl.load(do_base + q_offs, mask=q_mask, other=0.0)
            lse = tl.load(LSE + row_base + rows, mask=rows < Lq, other=0.0)
            delta = tl.load(DELTA + row_base + rows, mask=rows < Lq, other=0.0)

            # Transposed tiles, (BLOCK_N, BLOCK_M): row j is key j, column i is query i.
            s_t = tl.dot(k_block, tl.trans(q_block), input_precision=DOT_PRECISION)
            p_t = tl.exp2(s_t * qk_scale - lse[None, :] * 1.4426950408889634)
            keep = rows[None, :] < Lq
            if CAUSAL:
                keep = keep & (rows[None, :] >= offs_n[:, None])
            p_t = tl.where(keep, p_t, 0.0)
            dv += tl.dot(p_t.to(do_block.dtype), do_block, input_precision=DOT_PRECISION)
            dp_t = tl.dot(v_block, tl.trans(do_block), input_precision=DOT_PRECISION)
            ds_t = p_t * (dp_t - delta[None, :])
            dk += tl.dot(ds_t.to(q_block.dtype), q_block, input_precision=DOT_PRECISION)

    tl.store(DK + kv_offs, (dk * scale).to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + kv_offs, dv.to(DV.dtype.element_ty), mask=kv_mask)


@triton.jit
def _attn_bwd_dq(
    Q, K, V, DO, LSE, DELTA, DQ,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    n_heads, group, Lq, Lk, head_dim, scale,
    CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b, h = bh // n_heads, bh % n_heads
    kvh = h // group
    qk_scale = scale * 1.4426950408889634

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < head_dim
    q_offs = b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd
    q_mask = (offs_m[:, None] < Lq) & mask_d[None, :]
    q_block = tl.load(Q + q_offs, mask=q_mask, other=0.0)
    do_block = tl.load(DO + q_offs, mask=q_mask, other=0.0)
    lse = tl.load(LSE + bh * Lq + offs_m, mask=offs_m < Lq, other=0.0)
    delta = tl.load(DELTA + bh * Lq + offs_m, mask=offs_m < Lq, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    k_base = K + b * stride_kb + kvh * stride_kh
    v_base = V + b * stride_kb + kvh * stride_kh
    hi = tl.minimum(Lk, start_m + BLOCK_M) if CAUSAL else Lk
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        kv_offs = cols[:, None] * stride_kn + offs_d[None, :] * stride_kd
        kv_mask = (cols[:, None] < Lk) & mask_d[None, :]
        k_block = tl.load(k_base + kv_offs, mask=kv_mask, other=0.0)
        v_block = tl.load(v_base + kv_offs, mask=kv_mask, other=0.0)

        s = tl.dot(q_block, tl.trans(k_block), input_precision=DOT_PRECISION)
        p = tl.exp2(s * qk_scale - lse[:, None] * 1.4426950408889634)
        keep = cols[None, :] < Lk
        if CAUSAL:
            keep = keep & (cols[None, :] <= offs_m[:, None])
        p = tl.where(keep, p, 0.0)
        dp = tl.dot(do_block, tl.trans(v_block), input_precision=DOT_PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k_block.dtype), k_block, input_precision=DOT_PRECISION)

    tl.store(DQ + q_offs, (dq * scale).to(DQ.dtype.element_ty), mask=q_mask)


# -------------------------------------------------------------- launch configuration (GPU)
def _gpu_configs(block_ms, block_ns):
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
        for bm in block_ms for bn in block_ns for w in (4, 8) for s in (2, 3)
    ]


@functools.cache
def _tuned(kernel_name: str):
    """The autotuned wrapper of a kernel, built on the first GPU call (never at import)."""
    kernel = {"fwd": _attn_fwd, "dkdv": _attn_bwd_dkdv, "dq": _attn_bwd_dq}[kernel_name]
    if kernel_name == "fwd":
        configs = _gpu_configs((64, 128), (32, 64, 128))
    else:
        configs = _gpu_configs((32, 64, 128), (32, 64, 128))
    return triton.autotune(configs=configs, key=["Lq", "Lk", "BLOCK_D", "CAUSAL", "DOT_PRECISION"])(kernel)


def _launch(name: str, grid_rows: str, n_rows: int, n_programs: int, blocks, *args, **meta):
    """Launch kernel ``name`` with fixed ``blocks=(BLOCK_M, BLOCK_N)`` or, when None, autotuned."""
    if blocks is None:
        kernel = _tuned(name)
        grid = lambda cfg: (triton.cdiv(n_rows, cfg[grid_rows]), n_programs)
        kernel[grid](*args, **meta)
    else:
        kernel = {"fwd": _attn_fwd, "dkdv": _attn_bwd_dkdv, "dq": _attn_bwd_dq}[name]
        block_m, block_n = blocks
        rows_block = block_m if grid_rows == "BLOCK_M" else block_n
        kernel[(triton.cdiv(n_rows, rows_block), n_programs)](
            *args, BLOCK_M=block_m, BLOCK_N=block_n, **meta
        )


# ------------------------------------------------------------------------- host functions
def _dot_precision(dtype: torch.dtype) -> str:
    # float32 inputs get exact float32 products (a GPU would otherwise use TF32); 16-bit inputs
    # multiply in their own type with float32 accumulation either way.
    return "ieee" if dtype == torch.float32 else "tf32"


def attention_forward(q, k, v, causal: bool, scale: float, blocks=None):
    """Run the forward kernel on validated, contiguous inputs; returns ``(o, lse)``.

    ``o`` has ``q``'s shape and dtype; ``lse`` is float32 ``(batch, heads, Lq)``, natural log.
    ``blocks=(BLOCK_M, BLOCK_N)`` fixes the tile sizes; ``None`` autotunes (GPU only).
    """
    batch, heads, lq, d = q.shape
    kv_heads, lk = k.shape[1], k.shape[2]
    o = torch.empty_like(q)
    lse = torch.empty((batch, heads, lq), device=q.device, dtype=torch.float32)
    _launch(
        "fwd", "BLOCK_M", lq, batch * heads, blocks,
        q, k, v, o, lse,
        *q.stride(), *k.stride(), *v.stride(), *o.stride(),
        heads, heads // kv_heads, lq, lk, d, scale * LOG2E,
        CAUSAL=causal, DOT_PRECISION=_dot_precision(q.dtype), BLOCK_D=_block_d(d),
    )
    return o, lse


def attention_backward(do, q, k, v, o, lse, causal: bool, scale: float, blocks=None):
    """Run the three backward kernels; returns ``(dq, dk, dv)`` with the inputs' shapes."""
    batch, heads, lq, d = q.shape
    kv_heads, lk = k.shape[1], k.shape[2]
    do = do.contiguous()
    delta = torch.empty_like(lse)
    block_d = _block_d(d)
    pre_block = 32
    _attn_bwd_preprocess[(triton.cdiv(lq, pre_block), batch * heads)](
        o, do, delta, *o.stride(), heads, lq, d, BLOCK_M=pre_block, BLOCK_D=block_d,
    )
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    meta = {"CAUSAL": causal, "DOT_PRECISION": _dot_precision(q.dtype), "BLOCK_D": block_d}
    _launch(
        "dkdv", "BLOCK_N", lk, batch * kv_heads, blocks,
        q, k, v, do, lse, delta, dk, dv, *q.stride(), *k.stride(),
        heads, kv_heads, heads // kv_heads, lq, lk, d, scale, **meta,
    )
    _launch(
        "dq", "BLOCK_M", lq, batch * heads, blocks,
        q, k, v, do, lse, delta, dq, *q.stride(), *k.stride(),
        heads, heads // kv_heads, lq, lk, d, scale, **meta,
    )
    return dq, dk, dv


def _block_d(d: int) -> int:
    return max(16, triton.next_power_of_2(d))


class FlashAttention(torch.autograd.Function):
    """``autograd.Function`` around the kernels: saves ``q, k, v, o, lse`` (never the N×N matrix)."""

    @staticmethod
    def forward(ctx, q, k, v, causal, scale, blocks):
        o, lse = attention_forward(q, k, v, causal, scale, blocks)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal, ctx.scale, ctx.blocks = causal, scale, blocks
        ctx.mark_non_differentiable(lse)
        return o, lse

    @staticmethod
    def backward(ctx, do, _dlse):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = attention_backward(do, q, k, v, o, lse, ctx.causal, ctx.scale, ctx.blocks)
        return dq, dk, dv, None, None, None


def flash_attention(q, k, v, causal: bool = False, scale: float | None = None, *,
                    return_lse: bool = False, block_m: int | None = None, block_n: int | None = None):
    """Softmax attention ``softmax(q kᵀ · scale [+ causal mask]) v`` by the FlashAttention-2 kernels.

    q: (batch, heads, Lq, d); k, v: (batch, kv_heads, Lk, d) with heads % kv_heads == 0;
    16 <= d <= 128; float32, float16 or bfloat16. ``scale`` defaults to 1/sqrt(d). ``causal``
    (query i sees keys j <= i) needs Lq == Lk. Returns o (batch, heads, Lq, d) in q's dtype and,
    with ``return_lse=True``, also the float32 log-sum-exp of each score row, (batch, heads, Lq).
    Differentiable in q, k and v. ``block_m``/``block_n`` fix the tile sizes (powers of two >= 16);
    by default they are 32×32 on the interpreter and for float32, and autotuned on a GPU for
    16-bit inputs.
    """
    validate_attention_inputs(q, k, v, causal, scale, dtypes=SUPPORTED_DTYPES,
                              head_dims=(MIN_HEAD_DIM, MAX_HEAD_DIM))
    check_device(q, k, v, names=("q", "k", "v"))
    for name, blk in (("block_m", block_m), ("block_n", block_n)):
        if blk is not None and (blk < 16 or blk & (blk - 1)):
            raise ValueError(f"{name}: expected a power of two >= 16, got {blk}")
    if block_m is None and block_n is None and use_autotune() and q.dtype != torch.float32:
        blocks = None  # float32 (exact products on CUDA cores) skips the long autotuning compile
    else:
        blocks = (block_m or FIXED_BLOCK_M, block_n or FIXED_BLOCK_N)
    scale = float(scale) if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    dtype = q.dtype
    run = compute_dtype(dtype)  # bfloat16 -> float32 under the interpreter (see _triton_env)
    q, k, v = (t.to(run).contiguous() for t in (q, k, v))
    o, lse = FlashAttention.apply(q, k, v, bool(causal), scale, blocks)
    o = o.to(dtype)
    return (o, lse) if return_lse else o


__all__ = ["INTERPRET", "FlashAttention", "attention_backward", "attention_forward", "flash_attention"]
