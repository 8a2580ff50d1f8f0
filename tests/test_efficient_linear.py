"""Linear attention: parallel = chunked = recurrent; FAVOR+ estimates the softmax kernel."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.efficient.linear import (
    elu_feature,
    favor_attention,
    favor_features,
    linear_attention,
    linear_attention_chunked,
    linear_attention_recurrent,
    orthogonal_gaussian,
)


def _qkv(L, d=8, dv=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(2, 3, L, d, generator=g, dtype=torch.float64) for _ in range(2))
    return q, k, torch.randn(2, 3, L, dv, generator=g, dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(L=st.sampled_from([4, 16, 48]), chunk=st.sampled_from([1, 4, 16]), seed=st.integers(0, 100))
def test_parallel_recurrent_and_chunked_agree(L, chunk, seed):
    q, k, v = _qkv(L, seed=seed)
    par = linear_attention(q, k, v)
    rec, _ = linear_attention_recurrent(q, k, v)
    assert (par - rec).abs().max() < 1e-12
    if L % chunk == 0:
        assert (par - linear_attention_chunked(q, k, v, chunk=chunk)).abs().max() < 1e-12


def test_recurrent_state_continues_a_sequence():
    q, k, v = _qkv(20)
    full, _ = linear_attention_recurrent(q, k, v)
    first, state = linear_attention_recurrent(q[:, :, :12], k[:, :, :12], v[:, :, :12])
    second, _ = linear_attention_recurrent(q[:, :, 12:], k[:, :, 12:], v[:, :, 12:], state=state)
    assert torch.allclose(torch.cat([first, second], 2), full, atol=1e-12)


def test_linear_attention_is_attention_with_elu_kernel():
    q, k, v = _qkv(10)
    w = elu_feature(q) @ elu_feature(k).transpose(-1, -2)
    w = w.masked_fill(~torch.ones(10, 10, dtype=torch.bool).tril(), 0)
    assert torch.allclose(linear_attention(q, k, v), (w / w.sum(-1, keepdim=True)) @ v, atol=1e-12)
    non_causal = linear_attention(q, k, v, causal=False)
    w = elu_feature(q) @ elu_feature(k).transpose(-1, -2)
    assert torch.allclose(non_causal, (w / w.sum(-1, keepdim=True)) @ v, atol=1e-12)


def test_orthogonal_features_are_orthogonal_within_a_block():
    w = orthogonal_gaussian(8, 8, torch.Generator().manual_seed(0))
    gram = w @ w.T
    assert (gram - torch.diag(torch.diag(gram))).abs().max() < 1e-10


def test_favor_kernel_is_unbiased():
    g = torch.Generator().manual_seed(0)
    q = 0.5 * torch.randn(1, 5, 8, generator=g, dtype=torch.float64)
    k = 0.5 * torch.randn(1, 5, 8, generator=g, dtype=torch.float64)
    exact = torch.exp(q @ k.transpose(-1, -2) / math.sqrt(8))
    omega = torch.randn(200_000, 8, generator=g, dtype=torch.float64)
    x = q * 8**-0.25
    y = k * 8**-0.25
    fq = torch.exp(x @ omega.T - (x * x).sum(-1, keepdim=True) / 2)
    fk = torch.exp(y @ omega.T - (y * y).sum(-1, keepdim=True) / 2)
    estimate = fq @ fk.transpose(-1, -2) / omega.shape[0]
    assert ((estimate - exact).abs() / exact).max() < 0.02
    # favor_features is that estimate up to per-query / global factors, which attention normalises away
    fq2, fk2 = favor_features(q, omega, is_query=True), favor_features(k, omega, is_query=False)
    ratio = (fq2 @ fk2.transpose(-1, -2)) / estimate
    assert torch.allclose(ratio / ratio[:, :, :1], torch.ones_like(ratio), atol=1e-8)


def test_favor_error_falls_with_features():
    q, k, v = _qkv(64, d=16, dv=8)
    q, k = 0.5 * q, 0.5 * k
    exact = torch.softmax(q @ k.transpose(-1, -2) / 4, -1) @ v
    err = {m: sum(float((favor_attention(q, k, v, m, seed=s) - exact).norm() / exact.norm())
                  for s in range(5)) / 5 for m in (8, 512)}
    assert err[512] < 0.5 * err[8]


def test_bad_input():
    q, k, v = _qkv(10)
    with pytest.raises(ValueError, match="chunk"):
        linear_attention_chunked(q, k, v, chunk=4)
    with pytest.raises(ValueError, match="q, k, v"):
        linear_attention(q, k[:, :, :5], v)
    with pytest.raises(ValueError, match="n_features"):
        favor_attention(q, k, v, 0)
