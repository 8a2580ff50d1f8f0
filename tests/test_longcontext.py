"""Chunked attention equals full attention; its peak memory grows linearly; loss by position."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.longcontext import bin_mean, chunked_attention, loss_per_position
from roadmap_lib.measure import peak_memory


@settings(max_examples=30, deadline=None)
@given(lq=st.integers(1, 40), extra=st.integers(0, 10), block=st.integers(1, 17), causal=st.booleans(),
       seed=st.integers(0, 100))
def test_equals_full_attention(lq, extra, block, causal, seed):
    g = torch.Generator().manual_seed(seed)
    lk = lq + extra
    q = torch.randn(2, 3, lq, 8, generator=g, dtype=torch.float64)
    k, v = (torch.randn(2, 3, lk, 8, generator=g, dtype=torch.float64) for _ in range(2))
    mask = None
    if causal:  # bottom-right aligned: query i is position extra + i
        mask = torch.arange(lk)[None, :] <= torch.arange(lq)[:, None] + extra
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    got = chunked_attention(q, k, v, causal=causal, block_size=block)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_scale_argument():
    q, k, v = (torch.randn(1, 2, 9, 4) for _ in range(3))
    torch.testing.assert_close(chunked_attention(q, k, v, scale=0.3, block_size=4),
                               F.scaled_dot_product_attention(q, k, v, scale=0.3))


def test_peak_memory_grows_linearly_not_quadratically():
    def peaks(fn):
        out = []
        for n in (256, 512):
            q, k, v = (torch.randn(1, 2, n, 16) for _ in range(3))
            out.append(peak_memory(lambda q=q, k=k, v=v: fn(q, k, v)))
        return out

    c = peaks(lambda q, k, v: chunked_attention(q, k, v, causal=True, block_size=64))
    f = peaks(lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1), -1) @ v)  # the naive path
    assert c[1] / c[0] < 2.3 and f[1] / f[0] > 3.5


def test_errors():
    x = torch.randn(1, 1, 4, 2)
    with pytest.raises(ValueError, match="q: expected shape"):
        chunked_attention(x[0], x, x)
    with pytest.raises(ValueError, match="k, v"):
        chunked_attention(x, x, torch.randn(1, 1, 5, 2))
    with pytest.raises(ValueError, match="block_size"):
        chunked_attention(x, x, x, block_size=0)
    with pytest.raises(ValueError, match="causal"):
        chunked_attention(torch.randn(1, 1, 5, 2), x, x, causal=True)


def test_loss_per_position_and_bins():
    class Uniform(torch.nn.Module):
        def forward(self, ids):
            return torch.zeros(*ids.shape, 7)

    ids = torch.randint(0, 7, (3, 11))
    torch.testing.assert_close(loss_per_position(Uniform(), ids), torch.full((10,), float(torch.log(torch.tensor(7.0)))))
    torch.testing.assert_close(bin_mean(torch.arange(7.0), 3), torch.tensor([1.0, 4.0]))
    with pytest.raises(ValueError, match="ids"):
        loss_per_position(Uniform(), torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="width"):
        bin_mean(torch.arange(3.0), 4)
