"""S4D: convolution = recurrence; FFT convolution = direct convolution; the selective scan's
parallel form = its sequential form = transformers' CPU path."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.efficient.ssm import (
    S4D,
    causal_conv_direct,
    causal_conv_fft,
    selective_scan,
)


@settings(max_examples=25, deadline=None)
@given(L=st.integers(1, 70), lk=st.integers(1, 70), seed=st.integers(0, 50))
def test_fft_convolution_equals_direct(L, lk, seed):
    lk = min(lk, L)
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(2, 3, L, generator=g, dtype=torch.float64)
    kern = torch.randn(3, lk, generator=g, dtype=torch.float64)
    assert torch.allclose(causal_conv_fft(u, kern), causal_conv_direct(u, kern), atol=1e-10)
    # and the direct one is the definition y_t = sum_s k[t-s] u_s
    t = L - 1
    want = sum(kern[:, t - s] * u[:, :, s] for s in range(max(0, t - lk + 1), t + 1))
    assert torch.allclose(causal_conv_direct(u, kern)[:, :, t], want, atol=1e-10)


def test_s4d_convolution_equals_recurrence():
    torch.manual_seed(0)
    layer = S4D(6, state=8).double()
    x = torch.randn(2, 50, 6, dtype=torch.float64)
    assert (layer(x) - layer.recurrent(x)).abs().max() < 1e-10


def test_s4d_kernel_decays():
    torch.manual_seed(0)
    layer = S4D(4, state=8)
    kern = layer.kernel(2000)
    assert kern[:, -100:].abs().max() < 0.05 * kern[:, :100].abs().max()  # Re(A) < 0: stable


def _scan_inputs(b=2, d=5, n=4, L=33, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, d, L, generator=g, dtype=dtype)
    delta = torch.nn.functional.softplus(torch.randn(b, d, L, generator=g, dtype=dtype))
    A = -torch.rand(d, n, generator=g, dtype=dtype) * 2
    B = torch.randn(b, n, L, generator=g, dtype=dtype)
    C = torch.randn(b, n, L, generator=g, dtype=dtype)
    D = torch.randn(d, generator=g, dtype=dtype)
    z = torch.randn(b, d, L, generator=g, dtype=dtype)
    return u, delta, A, B, C, D, z


@settings(max_examples=25, deadline=None)
@given(L=st.integers(1, 40), seed=st.integers(0, 100))
def test_parallel_scan_equals_sequential(L, seed):
    args = _scan_inputs(L=L, seed=seed, dtype=torch.float64)
    y1, h1 = selective_scan(*args, mode="sequential", return_last_state=True)
    y2, h2 = selective_scan(*args, mode="parallel", return_last_state=True)
    assert (y1 - y2).abs().max() < 1e-10 and (h1 - h2).abs().max() < 1e-10


def test_scan_equals_transformers():
    from transformers.models.mamba.modeling_mamba import mamba_selective_scan

    u, delta, A, B, C, D, z = _scan_inputs()
    want = mamba_selective_scan(u, delta, A, B, C, D=D, z=z)
    for mode in ("sequential", "parallel"):
        assert torch.allclose(selective_scan(u, delta, A, B, C, D, z, mode=mode), want, atol=1e-5)


def test_bad_input():
    u, delta, A, B, C, _, _ = _scan_inputs()
    with pytest.raises(ValueError, match="A: expected"):
        selective_scan(u, delta, A[:3], B, C)
    with pytest.raises(ValueError, match="B: expected"):
        selective_scan(u, delta, A, B[:, :, :5], C)
    with pytest.raises(ValueError, match="u, delta"):
        selective_scan(u, delta[:, :, :4], A, B, C)
    with pytest.raises(ValueError, match="mode"):
        selective_scan(u, delta, A, B, C, mode="fast")
    with pytest.raises(ValueError, match="kernel"):
        causal_conv_fft(u, torch.randn(5, 40))
    with pytest.raises(ValueError, match="u, kernel"):
        causal_conv_direct(u, torch.randn(4, 3))
    with pytest.raises(ValueError, match="x: expected"):
        S4D(4)(torch.randn(2, 10, 5))
