"""The checks of chapter 14's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (the library's round-to-nearest
``quantize`` and ``gptq_quantize``, which the answers may not call) and declares, as small wrong
implementations, the mistakes it names in plain words ("likely mistake: ..."). A GPTQ answer that
changes the weight passed in is caught by the generic in-place check of ``check_function``.
Exercise 14.2 is a "predict, then measure" exercise: its check compares a prediction with a
measurement and needs no declared mistakes.
"""

from __future__ import annotations

import torch

from roadmap_lib.exercises import check_function, check_true
from roadmap_lib.quantization import dequantize, fake_quantize, gptq_hessian, gptq_quantize, layer_error, quantize
from roadmap_lib.quantization.rtn import qparams, quantize_with

# ---- exercise 14.1: zero-point quantisation, group-wise ------------------------------------------


def _zeropoint(w, bits, group_size, *, widen=True, round_zero=True, sign=1, levels_minus_one=True):
    out_features, in_features = w.shape
    groups = w.reshape(out_features, in_features // group_size, group_size)
    lo, hi = groups.amin(-1), groups.amax(-1)
    if widen:
        lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    top = 2**bits - 1
    scales = (hi - lo) / (top if levels_minus_one else 2**bits)
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))
    zeros = (-lo / scales).clamp(0, top)
    if round_zero:
        zeros = torch.round(zeros)
    codes = (torch.round(groups / scales.unsqueeze(-1)) + sign * zeros.unsqueeze(-1)).clamp(0, top)
    return codes.to(torch.uint8).reshape(w.shape), scales, zeros.to(torch.uint8)


ZEROPOINT_MISTAKES = {
    "lo and hi are not widened to include 0: take min(min(group), 0) and max(max(group), 0), so that 0 "
    "is exactly on the grid": lambda w, b, g: _zeropoint(w, b, g, widen=False),
    "the zero point is not rounded: it is an integer code, round(-lo / s)":
        lambda w, b, g: _zeropoint(w, b, g, round_zero=False),
    "the zero point is subtracted: the codes are round(w / s) + z": lambda w, b, g: _zeropoint(w, b, g, sign=-1),
    "the range is divided by 2**bits: b bits give 2**bits codes, so 2**bits - 1 steps between the lowest "
    "and the highest": lambda w, b, g: _zeropoint(w, b, g, levels_minus_one=False),
}


def check_zeropoint_quantize(fn) -> None:
    """Exercise 14.1: ``fn(w, bits, group_size) -> (codes, scales, zeros)`` against the library's
    round-to-nearest zero-point quantisation, dtypes included."""
    gen = torch.Generator().manual_seed(3)
    cases = []
    for shape, bits, group in [((8, 64), 4, 32), ((16, 128), 8, 128), ((4, 96), 3, 16)]:
        w = torch.randn(*shape, generator=gen) + 0.3
        w[0] = w[0].abs()  # a row with no negative weight: the grid must still contain 0
        cases.append(((w, bits, group), tuple(quantize(w, bits, "zeropoint", group))))
    check_function(fn, cases, name="zeropoint_quantize", outputs=("codes", "scales", "zero points"),
                   check_dtype=True, mistakes=ZEROPOINT_MISTAKES, forbid=[quantize, qparams, quantize_with])


# ---- exercise 14.3: GPTQ by hand -----------------------------------------------------------------


def _gptq(w, hessian, bits, *, damp=0.01, factor_of_inverse=True, upper=True, divide=True, fixed_scales=True,
          absolute=True):
    qmax = 2 ** (bits - 1) - 1
    W = w.clone()

    def scales_of(m):
        return (m.abs() if absolute else m).amax(dim=1) / qmax

    s = scales_of(W)
    h = hessian + damp * torch.diagonal(hessian).mean() * torch.eye(len(hessian), dtype=hessian.dtype)
    U = torch.linalg.cholesky(torch.linalg.inv(h) if factor_of_inverse else h, upper=upper)
    w_hat = torch.zeros_like(W)
    for j in range(W.shape[1]):
        if not fixed_scales:
            s = scales_of(W[:, j:])
        w_hat[:, j] = s * torch.clamp(torch.round(W[:, j] / s), -qmax, qmax)
        err = (W[:, j] - w_hat[:, j]) / (U[j, j] if divide else 1.0)
        W[:, j:] -= err[:, None] * U[j, j:][None, :]
    return w_hat


GPTQ_MISTAKES = {
    "no dampening: add 0.01 x mean(diag H) x I to H before inverting it": lambda w, h, b: _gptq(w, h, b, damp=0.0),
    "U is the Cholesky factor of H: it is the upper Cholesky factor of H's INVERSE":
        lambda w, h, b: _gptq(w, h, b, factor_of_inverse=False),
    "the lower Cholesky factor is used: pass upper=True": lambda w, h, b: _gptq(w, h, b, upper=False),
    "the error is not divided by U_jj before it is spread": lambda w, h, b: _gptq(w, h, b, divide=False),
    "the scales are recomputed from the updated weights as the loop goes: compute them once, from the "
    "original w": lambda w, h, b: _gptq(w, h, b, fixed_scales=False),
    "the scales use the max, not the max absolute value": lambda w, h, b: _gptq(w, h, b, absolute=False),
}


def check_gptq_by_hand(fn) -> None:
    """Exercise 14.3: ``fn(w, hessian, bits) -> w_hat`` against the library's GPTQ (per-channel
    scales, one block), then its output error against round-to-nearest's on the same inputs."""
    gen = torch.Generator().manual_seed(4)
    cases, inputs = [], []
    for out_f, in_f, bits in [(24, 40, 3), (12, 24, 4)]:
        w = torch.randn(out_f, in_f, generator=gen, dtype=torch.float64)
        x = torch.randn(300, in_f, generator=gen, dtype=torch.float64) @ torch.randn(
            in_f, in_f, generator=gen, dtype=torch.float64)
        h = gptq_hessian(x)
        cases.append(((w, h, bits), dequantize(*gptq_quantize(w, h, bits=bits, granularity="channel"))))
        inputs.append(x)
    check_function(fn, cases, name="gptq_by_hand", atol=1e-8, mistakes=GPTQ_MISTAKES, forbid=[gptq_quantize])
    (w, h, bits), _ = cases[0]
    mine, rtn = layer_error(w, fn(w, h, bits), inputs[0]), layer_error(w, fake_quantize(w, bits), inputs[0])
    check_true(mine < rtn, fail="the output error should be below round-to-nearest's",
               success=f"output error {mine:.1f} against round-to-nearest's {rtn:.1f} (24 x 40 weight, 3 bits)")

