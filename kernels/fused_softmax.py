"""The warm-up kernel: a fused, numerically stable softmax over the last dimension, forward and
backward, one Triton program per row.

Unfused, ``softmax(x)`` in PyTorch reads and writes ``x``-sized tensors several times (max, subtract,
exp, sum, divide). Fused, each program loads its row once, keeps it in registers (``BLOCK`` is the
row length rounded up to a power of two; the tail is masked with ``-inf``), and writes the result
once. The backward pass is fused the same way: ``dx = y ∘ (dy − Σ_j dy_j y_j)``.

Rows up to ``MAX_COLS`` long fit one program; FlashAttention (``flash.py``) is what lifts
that limit, by never holding a whole row at all.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._triton_env import check_device, compute_dtype

MAX_COLS = 1 << 14
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _softmax_fwd(X, Y, stride_x, stride_y, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(X + row * stride_x + cols, mask=mask, other=float("-inf")).to(tl.float32)
    x = x - tl.max(x, 0)  # the largest entry becomes 0: exp cannot overflow
    e = tl.exp(x)
    y = e / tl.sum(e, 0)
    tl.store(Y + row * stride_y + cols, y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _softmax_bwd(Y, DY, DX, stride_y, stride_dy, stride_dx, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    y = tl.load(Y + row * stride_y + cols, mask=mask, other=0.0).to(tl.float32)
    dy = tl.load(DY + row * stride_dy + cols, mask=mask, other=0.0).to(tl.float32)
    dx = y * (dy - tl.sum(dy * y, 0))
    tl.store(DX + row * stride_dx + cols, dx.to(DX.dtype.element_ty), mask=mask)


class Softmax(torch.autograd.Function):
    """Fused softmax over the last dimension of a 2-D ``(rows, n_cols)`` contiguous tensor."""

    @staticmethod
    def forward(ctx, x):
        y = torch.empty_like(x)
        block = triton.next_power_of_2(x.shape[1])
        _softmax_fwd[(x.shape[0],)](x, y, x.stride(0), y.stride(0), x.shape[1], BLOCK=block)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        dy = dy.contiguous()
        dx = torch.empty_like(y)
        block = triton.next_power_of_2(y.shape[1])
        _softmax_bwd[(y.shape[0],)](
            y, dy, dx, y.stride(0), dy.stride(0), dx.stride(0), y.shape[1], BLOCK=block
        )
        return dx


def softmax(x: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(x, dim=-1)`` by the fused kernel; any leading shape, differentiable.

    x: (..., n) with 1 <= n <= MAX_COLS, float32/float16/bfloat16. Returns the same shape and dtype.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 0 or x.numel() == 0:
        raise ValueError(f"x: expected a non-empty tensor with at least 1 dimension, got shape {tuple(x.shape)}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"x: unsupported dtype {x.dtype}; expected one of float32, float16, bfloat16")
    if x.shape[-1] > MAX_COLS:
        raise ValueError(f"x: rows of {x.shape[-1]} entries exceed this kernel's MAX_COLS={MAX_COLS}")
    check_device(x, names=("x",))
    dtype = x.dtype
    x2 = x.to(compute_dtype(dtype)).reshape(-1, x.shape[-1]).contiguous()
    return Softmax.apply(x2).reshape(x.shape).to(dtype)


__all__ = ["MAX_COLS", "Softmax", "softmax"]
