"""GPTQ: quantise a layer column by column, correcting the error as it goes (Frantar et al. 2022).

A linear layer W (out, in) sees calibration inputs X (in, n). Rounding each weight to its nearest
grid point ignores that the errors of different inputs can cancel; GPTQ instead minimises the
layer's output error ||W X - Ŵ X||² row by row. Its Hessian is the same for every row,

    H = 2 X Xᵀ (+ λ·mean(diag H)·I, "dampening", so that H is safely invertible),

and the Optimal Brain Surgeon step says: after quantising weight j, the best change of the weights
not yet quantised is the error times row j of H⁻¹ (restricted to what is left), divided by its
diagonal. GPTQ quantises the columns in a fixed order, so all those restricted inverses are the
rows of one upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU):

    for j = 0 .. in-1:   q = quant(W[:, j]);   e = (W[:, j] - q) / U[j, j];   W[:, j:] -= e Uⱼ,ⱼ:

**Lazy batches**: the update of column j only touches columns to its right; GPTQ applies the
updates inside a block of B columns at once and propagates the block's accumulated errors to the
rest of the matrix with one matrix product (same result, far fewer memory passes).

**Groups**: with a group size, each group of input columns gets its own grid, computed when the
loop reaches its first column from the weights as updated so far. Blocks are rounded to whole
groups, so those weights are fully updated and the batched loop equals the column-by-column one
(``tests/test_quantization_gptq.py`` checks it against a float64 Algorithm 1 written out plainly).

Scaling H changes nothing (U scales by 1/√c and the error by √c), so we average over tokens.
"""

from __future__ import annotations

import torch

from roadmap_lib.quantization.rtn import (
    Quantized,
    check_bits,
    check_positive_int,
    check_scheme,
    check_weight,
    dequantize,
    n_groups,
    qparams,
    quantize_with,
)


def gptq_hessian(x: torch.Tensor) -> torch.Tensor:
    """Calibration inputs x (..., in) -> H = 2 X Xᵀ / n (in, in), X the n tokens as columns."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
        got = f"{x.dtype}, shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x: expected a floating-point tensor (..., in_features), got {got}")
    x2 = x.detach().reshape(-1, x.shape[-1]).to(torch.promote_types(x.dtype, torch.float32))
    return 2 * x2.t() @ x2 / x2.shape[0]


def _check_hessian(hessian: torch.Tensor, in_features: int) -> None:
    if not isinstance(hessian, torch.Tensor) or not hessian.is_floating_point():
        raise TypeError(f"hessian: expected a floating-point tensor, got {type(hessian).__name__}")
    if hessian.shape != (in_features, in_features):
        raise ValueError(f"hessian: expected shape ({in_features}, {in_features}) to match w's "
                         f"in_features, got {tuple(hessian.shape)}")


def inverse_hessian_factor(hessian: torch.Tensor,
                           damp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U, dead)``: the upper Cholesky factor of the dampened H⁻¹, and the mask of dead inputs.

    An input that is always zero (diag H = 0) carries no information; its diagonal is set to 1 (its
    weights are zeroed by the caller), then λ = ``damp``·mean(diag H) is added to the diagonal.
    """
    h = hessian.clone()
    dead = torch.diagonal(h) == 0
    h[dead, dead] = 1
    h += damp * torch.diagonal(h).mean() * torch.eye(len(h), dtype=h.dtype, device=h.device)
    h_inv = torch.cholesky_inverse(torch.linalg.cholesky(h))
    return torch.linalg.cholesky(h_inv, upper=True), dead


def gptq_quantize(w: torch.Tensor, hessian: torch.Tensor, bits: int = 4, scheme: str = "absmax",
                  granularity: str | int = "channel", block_size: int = 128,
                  damp: float = 0.01) -> Quantized:
    """GPTQ codes of ``w`` (out, in) given the Hessian (in, in) of its calibration inputs.

    ``granularity``: ``"channel"`` (one grid per output row, from the initial weights) or an int
    group size. Returns :class:`~roadmap_lib.quantization.rtn.Quantized` like RTN's ``quantize``.
    Computed in float32 (float64 for a float64 weight).
    """
    check_weight(w)
    check_bits(bits)
    check_scheme(scheme)
    _check_hessian(hessian, w.shape[1])
    if granularity == "tensor":
        raise ValueError("granularity: GPTQ takes 'channel' or a group size, got 'tensor'")
    rows, groups = n_groups(granularity, tuple(w.shape))
    check_positive_int(block_size, "block_size")
    if not isinstance(damp, (int, float)) or isinstance(damp, bool) or damp < 0:
        raise ValueError(f"damp: expected a number >= 0, got {damp!r}")
    dtype = torch.promote_types(w.dtype, torch.float32)
    W = w.detach().to(dtype).clone()
    U, dead = inverse_hessian_factor(hessian.to(dtype), damp)
    W[:, dead] = 0
    cols = W.shape[1]
    group = cols // groups
    if groups == 1:
        scales, zeros = qparams(W, bits, scheme, "channel")
    else:
        scales = torch.empty(rows, groups, dtype=dtype, device=W.device)
        zeros = None if scheme == "absmax" else torch.empty(rows, groups, dtype=torch.uint8,
                                                             device=W.device)
        block_size = group * max(1, block_size // group)  # whole groups per block
    code_dtype = torch.int8 if scheme == "absmax" else torch.uint8
    codes = torch.empty(W.shape, dtype=code_dtype, device=W.device)

    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        W1, U1 = W[:, i1:i2].clone(), U[i1:i2, i1:i2]
        E = torch.zeros_like(W1)  # the scaled errors of this block
        for j in range(i2 - i1):
            col = i1 + j
            g = col // group
            if groups > 1 and col % group == 0:  # a new group: its grid from the updated weights
                s, z = qparams(W1[:, j:j + group], bits, scheme, "channel")
                scales[:, g:g + 1] = s
                if zeros is not None:
                    zeros[:, g:g + 1] = z
            s, z = scales[:, g:g + 1], None if zeros is None else zeros[:, g:g + 1]
            q = quantize_with(W1[:, j:j + 1], s, z, bits)
            codes[:, col] = q[:, 0]
            E[:, j] = (W1[:, j] - dequantize(q, s, z)[:, 0]) / U1[j, j]
            W1[:, j:] -= E[:, j:j + 1] * U1[j:j + 1, j:]  # update the rest of the block
        W[:, i2:] -= E @ U[i1:i2, i2:]  # the lazy update of everything to the right
    return Quantized(codes, scales, zeros)


def layer_error(w: torch.Tensor, w_hat: torch.Tensor, x: torch.Tensor) -> float:
    """The layer objective ||W X - Ŵ X||² summed over the calibration tokens x (..., in)."""
    x2 = x.reshape(-1, x.shape[-1]).to(torch.float64)
    return float(((x2 @ (w.to(torch.float64) - w_hat.to(torch.float64)).t()) ** 2).sum())


__all__ = ["gptq_hessian", "gptq_quantize", "inverse_hessian_factor", "layer_error"]
