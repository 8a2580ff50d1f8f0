"""roadmap_lib.quantization.gptq against the paper's Algorithm 1, written out plainly in float64.

The reference below quantises one column at a time and updates every remaining column right away
(no lazy batches), with its own dampening, its own inverse and its own quantiser; GPTQ with any
block size must give the same codes, and never a larger layer error than round-to-nearest.
"""

from __future__ import annotations

import pytest
import torch
from test_quantization_rtn import refuses

from roadmap_lib.quantization.gptq import (
    gptq_hessian,
    gptq_quantize,
    inverse_hessian_factor,
    layer_error,
)
from roadmap_lib.quantization.rtn import dequantize, fake_quantize


def algorithm_1(W, X, bits, scheme, group=None, damp=0.01):
    """GPTQ as the paper states it, float64, one column at a time. X (tokens, in)."""
    W = W.double().clone()
    X = X.double()
    H = 2 * X.t() @ X / X.shape[0]
    n = W.shape[1]
    for i in range(n):
        if H[i, i] == 0:  # a dead input: no information, weight set to zero
            H[i, i] = 1
            W[:, i] = 0
    H = H + damp * H.diagonal().mean() * torch.eye(n, dtype=torch.float64)
    U = torch.linalg.cholesky(torch.linalg.inv(H), upper=True)  # H^-1 = U^T U

    top = 2 ** (bits - 1) - 1 if scheme == "absmax" else 2**bits - 1

    def grid(block):
        if scheme == "absmax":
            s = block.abs().amax(1) / top
            return torch.where(s > 0, s, 1.0), None
        lo, hi = block.amin(1).clamp(max=0), block.amax(1).clamp(min=0)
        s = (hi - lo) / top
        s = torch.where(s > 0, s, 1.0)
        return s, torch.round(-lo / s)

    def quant(col, s, z):
        if z is None:
            return torch.round(col / s).clamp(-top, top) * s
        return (torch.round(col / s + 0.0) + z).clamp(0, top).sub(z) * s

    Q = torch.zeros_like(W)
    s, z = grid(W)
    for j in range(n):
        if group and j % group == 0:
            s, z = grid(W[:, j:j + group])
        Q[:, j] = quant(W[:, j], s, z)
        err = (W[:, j] - Q[:, j]) / U[j, j]
        W[:, j:] -= err.unsqueeze(1) * U[j, j:].unsqueeze(0)
    return Q


def layer(seed, rows=24, cols=64, tokens=256, dtype=torch.float64):
    """A weight and correlated calibration inputs (real activations are far from white)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(rows, cols, generator=g, dtype=torch.float64) * 0.1
    mix = torch.randn(cols, cols, generator=g, dtype=torch.float64) / cols**0.5
    X = torch.randn(tokens, cols, generator=g, dtype=torch.float64)
    X = X @ (torch.eye(cols, dtype=torch.float64) + mix)
    X[:, :4] *= 5  # a few strong features
    return W.to(dtype), X.to(dtype)


@pytest.mark.parametrize("scheme", ["absmax", "zeropoint"])
@pytest.mark.parametrize("group, block_size", [(None, 1), (None, 16), (None, 128), (16, 16), (16, 40),
                                               (32, 8), (8, 128)])
def test_equals_float64_algorithm_1(scheme, group, block_size):
    W, X = layer(0)
    X[:, 10] = 0  # a dead input
    q = gptq_quantize(W, gptq_hessian(X), 4, scheme, group or "channel", block_size=block_size)
    ours = dequantize(*q)
    ref = algorithm_1(W, X, 4, scheme, group)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    assert bool((ours[:, 10] == 0).all())


def test_float32_agrees_with_float64():
    W, X = layer(1, dtype=torch.float32)
    q = gptq_quantize(W, gptq_hessian(X), 4, "absmax", 16)
    ref = algorithm_1(W, X, 4, "absmax", 16)
    assert q.scales.dtype == torch.float32
    close = (dequantize(*q).double() - ref).abs() < 1e-5
    assert close.float().mean() > 0.99  # a rounding tie may flip a code or two


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("bits, scheme, granularity", [(4, "absmax", "channel"), (3, "zeropoint", "channel"),
                                                       (4, "zeropoint", 16), (2, "absmax", 32)])
def test_never_worse_than_round_to_nearest(seed, bits, scheme, granularity):
    W, X = layer(seed, dtype=torch.float32)
    gptq = dequantize(*gptq_quantize(W, gptq_hessian(X), bits, scheme, granularity))
    rtn = fake_quantize(W, bits, scheme, granularity)
    assert layer_error(W, gptq, X) < layer_error(W, rtn, X)


def test_hessian_and_its_inverse_factor():
    X = torch.randn(3, 10, 6, dtype=torch.float64)
    H = gptq_hessian(X)
    X2 = X.reshape(30, 6)
    torch.testing.assert_close(H, 2 * X2.t() @ X2 / 30)
    U, dead = inverse_hessian_factor(H, damp=0.0)
    assert not dead.any() and torch.equal(U, U.triu())
    torch.testing.assert_close(U.t() @ U, torch.linalg.inv(H))
    U2, _ = inverse_hessian_factor(7 * H, damp=0.0)  # scaling H does not change GPTQ's result
    torch.testing.assert_close(U2 * 7**0.5, U)


@pytest.mark.parametrize("call, error, words", [
    (lambda: gptq_quantize(torch.randn(4, 8), torch.eye(7)), ValueError, ["hessian", "(8, 8)", "(7, 7)"]),
    (lambda: gptq_quantize(torch.randn(4, 8), torch.eye(8), bits=1), ValueError, ["bits", "1"]),
    (lambda: gptq_quantize(torch.randn(4, 8), torch.eye(8), granularity=3), ValueError, ["granularity", "3"]),
    (lambda: gptq_quantize(torch.randn(4, 8), torch.eye(8), granularity="tensor"), ValueError, ["granularity"]),
    (lambda: gptq_quantize(torch.randn(4, 8), torch.eye(8), block_size=0), ValueError, ["block_size", "0"]),
    (lambda: gptq_quantize(torch.randn(4, 8), torch.eye(8), damp=-1), ValueError, ["damp", "-1"]),
    (lambda: gptq_quantize(torch.randn(8), torch.eye(8)), ValueError, ["w", "2-D"]),
    (lambda: gptq_quantize(torch.randn(4, 8), torch.eye(8, dtype=torch.int64)), TypeError, ["hessian"]),
    (lambda: gptq_hessian(torch.ones(4, 8, dtype=torch.int64)), TypeError, ["x", "torch.int64"]),
])
def test_refusals_name_the_argument(call, error, words):
    refuses(call, error, words)
