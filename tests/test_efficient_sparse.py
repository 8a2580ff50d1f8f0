"""Block-sparse attention equals dense attention under the same mask (fp64), and its layout covers
the pattern without building an L x L mask."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.attention import sliding_window_mask
from roadmap_lib.efficient.sparse import (
    SparsePattern,
    attended_pairs,
    block_sparse_attention,
    dense_masked_attention,
)


def _qkv(L, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 2, L, d, generator=g, dtype=torch.float64) for _ in range(3)]


PATTERNS = [
    SparsePattern("window", window=20, block=16),
    SparsePattern("window", window=9, block=8, causal=False),
    SparsePattern("dilated", window=6, dilation=3, block=16),
    SparsePattern("longformer", window=16, block=16, n_global=5),
    SparsePattern("longformer", window=16, block=16, n_global=20, causal=False),
    SparsePattern("bigbird", window=16, block=16, n_global=4, n_random=2),
    SparsePattern("bigbird", window=8, block=8, n_global=8, n_random=3, causal=False, seed=3),
]


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: f"{p.kind}-{'causal' if p.causal else 'bi'}")
def test_block_sparse_equals_masked_dense(pattern):
    q, k, v = _qkv(128)
    got = block_sparse_attention(q, k, v, pattern)
    want = dense_masked_attention(q, k, v, pattern)
    assert (got - want).abs().max() < 1e-12
    # and dense masked attention really is softmax attention with that mask (PyTorch's)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=pattern.mask(128))
    assert torch.allclose(want, ref, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["window", "dilated", "longformer", "bigbird"]), window=st.integers(1, 40),
       block=st.sampled_from([4, 8, 16]), dilation=st.integers(1, 4), n_global=st.integers(0, 20),
       n_random=st.integers(0, 3), causal=st.booleans(), seed=st.integers(0, 5))
def test_layout_covers_the_pattern(kind, window, block, dilation, n_global, n_random, causal, seed):
    L = 64
    pattern = SparsePattern(kind, window=window, block=block, dilation=dilation if kind == "dilated" else 1,
                            n_global=n_global if kind in ("longformer", "bigbird") else 0,
                            n_random=n_random if kind == "bigbird" else 0, causal=causal, seed=seed)
    if window > L and kind != "dilated":
        return
    nb = L // block
    true_layout = pattern.mask(L).view(nb, block, nb, block).any(3).any(1)
    layout = pattern.layout(L)
    assert not (true_layout & ~layout).any()  # every allowed pair lies in a computed block
    q, k, v = _qkv(L, d=4, seed=seed)
    assert torch.allclose(block_sparse_attention(q, k, v, pattern), dense_masked_attention(q, k, v, pattern),
                          atol=1e-10)


def test_window_is_the_attention_module_mask():
    p = SparsePattern("window", window=7, block=8)
    assert torch.equal(p.mask(64), sliding_window_mask(64, 7))


def test_work_falls_with_the_pattern():
    p = SparsePattern("window", window=64, block=32)
    allowed_1k, computed_1k = attended_pairs(p, 1024)
    _, computed_2k = attended_pairs(p, 2048)
    assert computed_2k < 2.1 * computed_1k  # linear in L, not quadratic
    assert computed_1k < 3 * allowed_1k and computed_1k < 1024 * 1024 / 8


def test_bad_input():
    q, k, v = _qkv(100)
    with pytest.raises(ValueError, match="not a multiple of block"):
        block_sparse_attention(q, k, v, SparsePattern("window", window=8, block=16))
    q, k, v = _qkv(32)
    with pytest.raises(ValueError, match="window: 64 is longer"):
        block_sparse_attention(q, k, v, SparsePattern("window", window=64, block=16))
    with pytest.raises(ValueError, match="n_global: 40 global tokens"):
        SparsePattern("longformer", window=4, block=16, n_global=40).mask(32)
    with pytest.raises(ValueError, match="kind"):
        SparsePattern("strided")
    with pytest.raises(ValueError, match="n_random"):
        SparsePattern("window", n_random=2)
    with pytest.raises(ValueError, match="window: expected an int >= 1"):
        SparsePattern("window", window=0)
    with pytest.raises(ValueError, match="q, k, v"):
        block_sparse_attention(q[0], k[0], v[0], SparsePattern("window", window=8, block=16))
