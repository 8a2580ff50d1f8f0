"""FlashAttention-2 in Triton: forward and backward, causal or not, MHA/GQA/MQA, any length,
padded batches or packed variable-length ones.

Shapes: ``q`` is ``(batch, heads, Lq, d)``; ``k`` and ``v`` are ``(batch, kv_heads, Lk, d)`` with
``heads % kv_heads == 0`` (query head ``h`` reads key/value head ``h // (heads // kv_heads)``, as
``repeat_interleave`` and PyTorch's ``enable_gqa`` do). ``16 <= d <= 128``; float32, float16 or
bfloat16; every product is accumulated in float32. Causal attention with ``Lq != Lk`` is aligned
bottom-right (FlashAttention >= 2.1): query ``i`` sees keys ``j <= i + Lk - Lq``; a query that sees
no key (``Lq > Lk``) gets output 0 and log-sum-exp ``-inf``.

:func:`flash_attention_varlen` runs the same kernels on packed sequences, as FlashAttention's
``flash_attn_varlen_func``: ``q`` is ``(total_q, heads, d)``, ``k``/``v`` ``(total_k, kv_heads, d)``,
sequence ``b`` being rows ``cu_seqlens_q[b]:cu_seqlens_q[b+1]`` of ``q`` (and likewise for ``k``).
Each program reads its sequence's start and length from ``cu_seqlens`` (``VARLEN``); nothing else
changes, so no padding is ever computed.

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

The backward kernels give first derivatives only: differentiating through them
(``create_graph=True``) raises a clear error (``reference.first_order_only``).

The pure-PyTorch version of the same algorithm, with the same names, is ``reference.py``.
"""

from __future__ import annotations

import functools
import math

import torch
import triton
import triton.language as tl

from ._triton_env import INTERPRET, check_device, compute_dtype, use_autotune
from .reference import first_order_only, validate_attention_inputs, validate_varlen_inputs

LOG2E = 1.4426950408889634  # log2(e)
LN2 = 0.6931471805599453  # ln(2)

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MIN_HEAD_DIM, MAX_HEAD_DIM = 16, 128
#: Block sizes used without autotuning (the interpreter, or a GPU run with autotune off).
FIXED_BLOCK_M, FIXED_BLOCK_N = 32, 32


# ----------------------------------------------------------------------------------- forward
@triton.jit
def _attn_fwd(
    Q, K, V, O, LSE, CU_Q, CU_K,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    stride_lb, stride_lh,
    n_heads, group, Lq, Lk, head_dim, qk_scale,
    CAUSAL: tl.constexpr, VARLEN: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b, h = bh // n_heads, bh % n_heads
    kvh = h // group  # the key/value head this query head reads
    q_lo, k_lo = 0, 0  # where sequence b starts in q and in k
    if VARLEN:  # packed: sequence b is rows CU_Q[b]:CU_Q[b+1] of q and CU_K[b]:CU_K[b+1] of k
        q_lo, k_lo = tl.load(CU_Q + b), tl.load(CU_K + b)
        Lq, Lk = tl.load(CU_Q + b + 1) - q_lo, tl.load(CU_K + b + 1) - k_lo

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < head_dim

    q_ptrs = (Q + b * stride_qb + h * stride_qh + (q_lo + offs_m[:, None]) * stride_qm
              + offs_d[None, :] * stride_qd)
    q_block = tl.load(q_ptrs, mask=(offs_m[:, None] < Lq) & mask_d[None, :], other=0.0)
    k_base = K + b * stride_kb + kvh * stride_kh + k_lo * stride_kn
    v_base = V + b * stride_vb + kvh * stride_vh + k_lo * stride_vn

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # running row max (base-2 units)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)  # running sum of exp2(s - m_i)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)  # running sum of exp2(s - m_i) @ v

    # Causal, aligned bottom-right: query i sees keys j <= i + diag (diag = 0 when Lq == Lk).
    # Key blocks entirely to the right of this query block are all masked; skip them.
    diag = Lk - Lq
    hi = tl.minimum(Lk, start_m + BLOCK_M + diag) if CAUSAL else Lk
    if VARLEN:
        hi = tl.where(start_m < Lq, hi, 0)  # a block past the end of a shorter sequence: no work
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
            keep = keep & (cols[None, :] <= offs_m[:, None] + diag)
        s = tl.where(keep, s, float("-inf"))

        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row with no key yet: 0, not -inf
        alpha = tl.exp2(m_i - m_ref)  # rescales what was summed under the old max
        p = tl.exp2(s - m_ref[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v_block.dtype), v_block, input_precision=DOT_PRECISION)
        m_i = m_new

    l_safe = tl.where(l_i == 0.0, 1.0, l_i)  # a row that saw no key: output 0, lse -inf (m_i)
    o_block = acc / l_safe[:, None]
    o_ptrs = (O + b * stride_ob + h * stride_oh + (q_lo + offs_m[:, None]) * stride_om
              + offs_d[None, :] * stride_od)
    tl.store(o_ptrs, o_block.to(O.dtype.element_ty), mask=(offs_m[:, None] < Lq) & mask_d[None, :])
    lse = (m_i + tl.log2(l_safe)) * 0.6931471805599453  # back to natural log
    tl.store(LSE + b * stride_lb + h * stride_lh + q_lo + offs_m, lse, mask=offs_m < Lq)


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
    Q, K, V, DO, LSE, DELTA, DK, DV, CU_Q, CU_K,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_lb, stride_lh,
    n_heads, n_kv_heads, group, Lq, Lk, head_dim, scale,
    CAUSAL: tl.constexpr, VARLEN: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # Q, DO share strides (q-shaped); K, V, DK, DV share strides (kv-shaped); all contiguous.
    start_n = tl.program_id(0) * BLOCK_N
    bkv = tl.program_id(1)
    b, kvh = bkv // n_kv_heads, bkv % n_kv_heads
    qk_scale = scale * 1.4426950408889634
    q_lo, k_lo = 0, 0
    if VARLEN:  # packed sequences, as in _attn_fwd
        q_lo, k_lo = tl.load(CU_Q + b), tl.load(CU_K + b)
        Lq, Lk = tl.load(CU_Q + b + 1) - q_lo, tl.load(CU_K + b + 1) - k_lo
    diag = Lk - Lq

    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < head_dim
    kv_offs = (b * stride_kb + kvh * stride_kh + (k_lo + offs_n[:, None]) * stride_kn
               + offs_d[None, :] * stride_kd)
    kv_mask = (offs_n[:, None] < Lk) & mask_d[None, :]
    k_block = tl.load(K + kv_offs, mask=kv_mask, other=0.0)
    v_block = tl.load(V + kv_offs, mask=kv_mask, other=0.0)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)

    # Causal: query blocks that end before this key block see none of it (query i sees key j
    # when i >= j - diag); start at the diagonal.
    lo = (tl.maximum(start_n - diag, 0) // BLOCK_M) * BLOCK_M if CAUSAL else 0
    if VARLEN:
        lo = tl.where(start_n < Lk, lo, Lq)  # a block past the end of a shorter sequence: no work
    for g in range(group):  # every query head that reads this key/value head: no atomics
        h = kvh * group + g
        q_base = Q + b * stride_qb + h * stride_qh + q_lo * stride_qm
        do_base = DO + b * stride_qb + h * stride_qh + q_lo * stride_qm
        row_base = b * stride_lb + h * stride_lh + q_lo
        for start_m in range(lo, Lq, BLOCK_M):
            rows = start_m + offs_m
            q_offs = rows[:, None] * stride_qm + offs_d[None, :] * stride_qd
            q_mask = (rows[:, None] < Lq) & mask_d[None, :]
            q_block = tl.load(q_base + q_offs, mask=q_mask, other=0.0)
            do_block = tl.load(do_base + q_offs, mask=q_mask, other=0.0)
            lse = tl.load(LSE + row_base + rows, mask=rows < Lq, other=0.0)
            lse = tl.where(lse == float("-inf"), float("inf"), lse)  # a row that saw no key: P = 0
            delta = tl.load(DELTA + row_base + rows, mask=rows < Lq, other=0.0)

            # Transposed tiles, (BLOCK_N, BLOCK_M): row j is key j, column i is query i.
            s_t = tl.dot(k_block, tl.trans(q_block), input_precision=DOT_PRECISION)
            p_t = tl.exp2(s_t * qk_scale - lse[None, :] * 1.4426950408889634)
            keep = rows[None, :] < Lq
            if CAUSAL:
                keep = keep & (rows[None, :] + diag >= offs_n[:, None])
            p_t = tl.where(keep, p_t, 0.0)
            dv += tl.dot(p_t.to(do_block.dtype), do_block, input_precision=DOT_PRECISION)
            dp_t = tl.dot(v_block, tl.trans(do_block), input_precision=DOT_PRECISION)
            ds_t = p_t * (dp_t - delta[None, :])
            dk += tl.dot(ds_t.to(q_block.dtype), q_block, input_precision=DOT_PRECISION)

    tl.store(DK + kv_offs, (dk * scale).to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + kv_offs, dv.to(DV.dtype.element_ty), mask=kv_mask)


@triton.jit
def _attn_bwd_dq(
    Q, K, V, DO, LSE, DELTA, DQ, CU_Q, CU_K,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_lb, stride_lh,
    n_heads, group, Lq, Lk, head_dim, scale,
    CAUSAL: tl.constexpr, VARLEN: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b, h = bh // n_heads, bh % n_heads
    kvh = h // group
    qk_scale = scale * 1.4426950408889634
    q_lo, k_lo = 0, 0
    if VARLEN:  # packed sequences, as in _attn_fwd
        q_lo, k_lo = tl.load(CU_Q + b), tl.load(CU_K + b)
        Lq, Lk = tl.load(CU_Q + b + 1) - q_lo, tl.load(CU_K + b + 1) - k_lo
    diag = Lk - Lq

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < head_dim
    q_offs = (b * stride_qb + h * stride_qh + (q_lo + offs_m[:, None]) * stride_qm
              + offs_d[None, :] * stride_qd)
    q_mask = (offs_m[:, None] < Lq) & mask_d[None, :]
    q_block = tl.load(Q + q_offs, mask=q_mask, other=0.0)
    do_block = tl.load(DO + q_offs, mask=q_mask, other=0.0)
    row_offs = b * stride_lb + h * stride_lh + q_lo + offs_m
    lse = tl.load(LSE + row_offs, mask=offs_m < Lq, other=0.0)
    lse = tl.where(lse == float("-inf"), float("inf"), lse)  # a row that saw no key: P = 0
    delta = tl.load(DELTA + row_offs, mask=offs_m < Lq, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    k_base = K + b * stride_kb + kvh * stride_kh + k_lo * stride_kn
    v_base = V + b * stride_kb + kvh * stride_kh + k_lo * stride_kn
    hi = tl.minimum(Lk, start_m + BLOCK_M + diag) if CAUSAL else Lk
    if VARLEN:
        hi = tl.where(start_m < Lq, hi, 0)
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
            keep = keep & (cols[None, :] <= offs_m[:, None] + diag)
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
    key = ["Lq", "Lk", "BLOCK_D", "CAUSAL", "VARLEN", "DOT_PRECISION"]
    return triton.autotune(configs=configs, key=key)(kernel)


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


def _strides(t: torch.Tensor, packed: bool) -> tuple[int, ...]:
    """``t``'s strides as (batch, head, seq, d). A packed (tokens, heads, d) tensor has batch
    stride 0: each program adds the first row of its sequence, read from ``cu_seqlens``."""
    return (0, t.stride(1), t.stride(0), t.stride(2)) if packed else tuple(t.stride())


def _layout(q, k, varlen):
    """(batch, heads, kv_heads, Lq, Lk, lse shape, lse strides (batch, head), cu_q, cu_k).

    Dense: lse is (batch, heads, Lq). Packed (``varlen = (cu_q, cu_k, max_q, max_k)``): lse is
    (heads, total_q) and Lq, Lk are the longest sequences (the grid's size).
    """
    if varlen is None:
        batch, heads, lq, _ = q.shape
        return batch, heads, k.shape[1], lq, k.shape[2], (batch, heads, lq), (heads * lq, lq), None, None
    cu_q, cu_k, max_q, max_k = varlen
    total_q, heads, _ = q.shape
    return cu_q.numel() - 1, heads, k.shape[1], max_q, max_k, (heads, total_q), (0, total_q), cu_q, cu_k


def _forward(q, k, v, causal, scale, blocks, varlen=None):
    packed = varlen is not None
    batch, heads, kv_heads, lq, lk, lse_shape, lse_strides, cu_q, cu_k = _layout(q, k, varlen)
    d = q.shape[-1]
    o = torch.empty_like(q)
    lse = torch.empty(lse_shape, device=q.device, dtype=torch.float32)
    if not packed:
        cu_q = cu_k = lse  # unread without VARLEN
    _launch(
        "fwd", "BLOCK_M", lq, batch * heads, blocks,
        q, k, v, o, lse, cu_q, cu_k,
        *_strides(q, packed), *_strides(k, packed), *_strides(v, packed), *_strides(o, packed),
        *lse_strides, heads, heads // kv_heads, lq, lk, d, scale * LOG2E,
        CAUSAL=causal, VARLEN=packed, DOT_PRECISION=_dot_precision(q.dtype), BLOCK_D=_block_d(d),
    )
    return o, lse


def _backward(do, q, k, v, o, lse, causal, scale, blocks, varlen=None):
    packed = varlen is not None
    batch, heads, kv_heads, lq, lk, _, lse_strides, cu_q, cu_k = _layout(q, k, varlen)
    if not packed:
        cu_q = cu_k = lse
    d = q.shape[-1]
    do = do.contiguous()
    delta = torch.empty_like(lse)
    block_d = _block_d(d)
    pre_block = 32
    # delta per row of o; a packed batch is one long sequence here (delta is laid out like lse)
    rows, programs = (q.shape[0], heads) if packed else (lq, batch * heads)
    _attn_bwd_preprocess[(triton.cdiv(rows, pre_block), programs)](
        o, do, delta, *_strides(o, packed), heads, rows, d, BLOCK_M=pre_block, BLOCK_D=block_d,
    )
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    meta = {"CAUSAL": causal, "VARLEN": packed, "DOT_PRECISION": _dot_precision(q.dtype),
            "BLOCK_D": block_d}
    strides = (*_strides(q, packed), *_strides(k, packed), *lse_strides)
    _launch(
        "dkdv", "BLOCK_N", lk, batch * kv_heads, blocks,
        q, k, v, do, lse, delta, dk, dv, cu_q, cu_k, *strides,
        heads, kv_heads, heads // kv_heads, lq, lk, d, scale, **meta,
    )
    _launch(
        "dq", "BLOCK_M", lq, batch * heads, blocks,
        q, k, v, do, lse, delta, dq, cu_q, cu_k, *strides,
        heads, heads // kv_heads, lq, lk, d, scale, **meta,
    )
    return dq, dk, dv


def attention_forward(q, k, v, causal: bool, scale: float, blocks=None):
    """Run the forward kernel on validated, contiguous inputs; returns ``(o, lse)``.

    ``o`` has ``q``'s shape and dtype; ``lse`` is float32 ``(batch, heads, Lq)``, natural log.
    ``blocks=(BLOCK_M, BLOCK_N)`` fixes the tile sizes; ``None`` autotunes (GPU only).
    """
    return _forward(q, k, v, causal, scale, blocks)


def attention_backward(do, q, k, v, o, lse, causal: bool, scale: float, blocks=None):
    """Run the three backward kernels; returns ``(dq, dk, dv)`` with the inputs' shapes."""
    return _backward(do, q, k, v, o, lse, causal, scale, blocks)


def varlen_attention_forward(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q: int,
                             max_seqlen_k: int, causal: bool, scale: float, blocks=None):
    """:func:`attention_forward` on packed sequences (validated, contiguous); returns ``(o, lse)``,
    ``o`` (total_q, heads, d) and ``lse`` float32 (heads, total_q)."""
    return _forward(q, k, v, causal, scale, blocks, (cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k))


def varlen_attention_backward(do, q, k, v, o, lse, cu_seqlens_q, cu_seqlens_k, max_seqlen_q: int,
                              max_seqlen_k: int, causal: bool, scale: float, blocks=None):
    """:func:`attention_backward` on packed sequences; returns ``(dq, dk, dv)``."""
    varlen = (cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
    return _backward(do, q, k, v, o, lse, causal, scale, blocks, varlen)


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
        dq, dk, dv = first_order_only(  # the kernels give first derivatives only
            "flash_attention",
            lambda g: attention_backward(g, q, k, v, o, lse, ctx.causal, ctx.scale, ctx.blocks),
            (q, k, v), (do,),
        )
        return dq, dk, dv, None, None, None


class FlashAttentionVarlen(torch.autograd.Function):
    """:class:`FlashAttention` for packed sequences (:func:`flash_attention_varlen`)."""

    @staticmethod
    def forward(ctx, q, k, v, cu_q, cu_k, max_q, max_k, causal, scale, blocks):
        o, lse = varlen_attention_forward(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale, blocks)
        ctx.save_for_backward(q, k, v, o, lse, cu_q, cu_k)
        ctx.args = (max_q, max_k, causal, scale, blocks)
        ctx.mark_non_differentiable(lse)
        return o, lse

    @staticmethod
    def backward(ctx, do, _dlse):
        q, k, v, o, lse, cu_q, cu_k = ctx.saved_tensors
        dq, dk, dv = first_order_only(
            "flash_attention_varlen",
            lambda g: varlen_attention_backward(g, q, k, v, o, lse, cu_q, cu_k, *ctx.args),
            (q, k, v), (do,),
        )
        return dq, dk, dv, None, None, None, None, None, None, None


def _blocks(dtype: torch.dtype, block_m: int | None, block_n: int | None):
    """The tile sizes to launch with: fixed ``(BLOCK_M, BLOCK_N)``, or None to autotune."""
    for name, blk in (("block_m", block_m), ("block_n", block_n)):
        if blk is not None and (blk < 16 or blk & (blk - 1)):
            raise ValueError(f"{name}: expected a power of two >= 16, got {blk}")
    if block_m is None and block_n is None and use_autotune() and dtype != torch.float32:
        return None  # float32 (exact products on CUDA cores) skips the long autotuning compile
    return (block_m or FIXED_BLOCK_M, block_n or FIXED_BLOCK_N)


def flash_attention(q, k, v, causal: bool = False, scale: float | None = None, *,
                    return_lse: bool = False, block_m: int | None = None, block_n: int | None = None):
    """Softmax attention ``softmax(q kᵀ · scale [+ causal mask]) v`` by the FlashAttention-2 kernels.

    q: (batch, heads, Lq, d); k, v: (batch, kv_heads, Lk, d) with heads % kv_heads == 0;
    16 <= d <= 128; float32, float16 or bfloat16. ``scale`` defaults to 1/sqrt(d). ``causal``:
    query i sees keys j <= i + Lk - Lq (bottom-right aligned as in FlashAttention >= 2.1, the usual
    j <= i when Lq == Lk; with Lq > Lk the first Lq - Lk queries see no key and get output 0).
    Returns o (batch, heads, Lq, d) in q's dtype and,
    with ``return_lse=True``, also the float32 log-sum-exp of each score row, (batch, heads, Lq).
    Differentiable in q, k and v (first derivatives only: differentiating the gradients raises).
    ``block_m``/``block_n`` fix the tile sizes (powers of two >= 16);
    by default they are 32×32 on the interpreter and for float32, and autotuned on a GPU for
    16-bit inputs.
    """
    validate_attention_inputs(q, k, v, causal, scale, dtypes=SUPPORTED_DTYPES,
                              head_dims=(MIN_HEAD_DIM, MAX_HEAD_DIM))
    check_device(q, k, v, names=("q", "k", "v"))
    blocks = _blocks(q.dtype, block_m, block_n)
    scale = float(scale) if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    dtype = q.dtype
    run = compute_dtype(dtype)  # bfloat16 -> float32 under the interpreter (see _triton_env)
    q, k, v = (t.to(run).contiguous() for t in (q, k, v))
    o, lse = FlashAttention.apply(q, k, v, bool(causal), scale, blocks)
    o = o.to(dtype)
    return (o, lse) if return_lse else o


def flash_attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q: int,
                           max_seqlen_k: int, causal: bool = False, scale: float | None = None, *,
                           return_lse: bool = False, block_m: int | None = None,
                           block_n: int | None = None):
    """:func:`flash_attention` on a batch of sequences of different lengths, packed without padding
    (the interface of FlashAttention's ``flash_attn_varlen_func``).

    q: (total_q, heads, d); k, v: (total_k, kv_heads, d). ``cu_seqlens_q`` and ``cu_seqlens_k`` are
    int32 (batch + 1,) cumulative lengths starting at 0: sequence b is rows
    ``cu_seqlens_q[b]:cu_seqlens_q[b+1]`` of q and attends only to rows
    ``cu_seqlens_k[b]:cu_seqlens_k[b+1]`` of k and v (causal: bottom-right aligned within the
    sequence). ``max_seqlen_q``/``max_seqlen_k``: the longest sequences (or more). Returns o
    (total_q, heads, d) and, with ``return_lse=True``, the float32 log-sum-exp (heads, total_q).
    Other arguments, dtypes and gradients as in :func:`flash_attention`.
    """
    max_q, max_k = validate_varlen_inputs(
        q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, scale,
        dtypes=SUPPORTED_DTYPES, head_dims=(MIN_HEAD_DIM, MAX_HEAD_DIM),
    )
    check_device(q, k, v, cu_seqlens_q, cu_seqlens_k,
                 names=("q", "k", "v", "cu_seqlens_q", "cu_seqlens_k"))
    blocks = _blocks(q.dtype, block_m, block_n)
    scale = float(scale) if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    dtype = q.dtype
    run = compute_dtype(dtype)
    q, k, v = (t.to(run).contiguous() for t in (q, k, v))
    cu_q, cu_k = cu_seqlens_q.contiguous(), cu_seqlens_k.contiguous()
    o, lse = FlashAttentionVarlen.apply(q, k, v, cu_q, cu_k, max_q, max_k, bool(causal), scale, blocks)
    o = o.to(dtype)
    return (o, lse) if return_lse else o


__all__ = [
    "INTERPRET", "FlashAttention", "FlashAttentionVarlen", "attention_backward", "attention_forward",
    "flash_attention", "flash_attention_varlen",
    "varlen_attention_backward", "varlen_attention_forward",
]
