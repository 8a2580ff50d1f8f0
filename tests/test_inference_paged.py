"""Paged KV cache: allocator bookkeeping, gathers equal to the contiguous cache, model parity."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.attention import scaled_dot_product_attention
from roadmap_lib.inference.paged import (
    BlockAllocator,
    OutOfBlocks,
    PagedKVCache,
    gather_kv,
    paged_attention,
    waste_report,
)
from roadmap_lib.models import GPT, GPTConfig


def test_allocator_hands_out_and_takes_back():
    a = BlockAllocator(3)
    got = [a.allocate() for _ in range(3)]
    assert sorted(got) == [0, 1, 2] and a.num_free == 0
    with pytest.raises(OutOfBlocks):
        a.allocate()
    a.free([got[1]])
    assert a.allocate() == got[1]
    with pytest.raises(ValueError, match="not allocated"):
        a.free([got[1], got[1]])


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(1, 30), min_size=1, max_size=5),
       block_size=st.sampled_from([1, 3, 4, 8]))
def test_paged_attention_equals_contiguous(lengths, block_size):
    torch.manual_seed(len(lengths))
    heads, kv_heads, d = 4, 2, 8
    cache = PagedKVCache(1, kv_heads, d, num_blocks=160, block_size=block_size)
    contiguous = []
    # interleave the sequences' growth so that their blocks are not contiguous in the pool
    for s in range(len(lengths)):
        cache.add(s)
        contiguous.append((torch.randn(kv_heads, lengths[s], d), torch.randn(kv_heads, lengths[s], d)))
    for t in range(max(lengths)):
        for s, n in enumerate(lengths):
            if t < n:
                b, o = cache.reserve(s, 1)
                k, v = contiguous[s]
                cache.write(0, b, o, k[None, :, t], v[None, :, t])
    q = torch.randn(len(lengths), heads, 1, d)
    got = paged_attention(q, cache.k_pool[0], cache.v_pool[0], cache.block_tables(range(len(lengths))),
                          torch.tensor(lengths))
    for s, (k, v) in enumerate(contiguous):
        ref = scaled_dot_product_attention(q[s:s + 1], k[None], v[None], enable_gqa=True)
        torch.testing.assert_close(got[s:s + 1], ref, atol=1e-6, rtol=0)
    # a sequence's blocks are returned to the pool when it is freed
    used = cache.allocator.num_used
    cache.free(0)
    assert cache.allocator.num_used == used - -(-lengths[0] // block_size)


def test_model_with_paged_cache_equals_plain_cache():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, context_length=40, d_model=32, n_layers=2, n_heads=4)).eval()
    ids = torch.randint(0, 30, (1, 21))
    paged = PagedKVCache.for_model(model, num_blocks=16, block_size=4)
    paged.add("a")
    plain = model.new_cache()
    with torch.no_grad():
        outs = [model(ids[:, :13], cache=paged.views("a", 13))]
        refs = [model(ids[:, :13], cache=plain)]
        for t in range(13, 21):
            outs.append(model(ids[:, t:t + 1], cache=paged.views("a", 1)))
            refs.append(model(ids[:, t:t + 1], cache=plain))
    torch.testing.assert_close(torch.cat(outs, 1), torch.cat(refs, 1), atol=1e-5, rtol=0)
    assert paged.allocator.num_used == 6  # 21 tokens in blocks of 4


def test_waste_report_counts_blocks():
    report = waste_report(lambda: PagedKVCache(2, 2, 4, num_blocks=100, block_size=4), [1, 4, 5, 9], 16)
    assert report["blocks"] == 1 + 1 + 2 + 3
    assert report["used_bytes"] == 19 * 2 * 2 * 2 * 4 * 4  # tokens * K,V * layers * heads * d * 4 bytes
    assert report["contiguous_bytes"] == 4 * 16 * 2 * 2 * 2 * 4 * 4
    assert report["paged_waste"] < report["contiguous_waste"]


def test_errors():
    cache = PagedKVCache(1, 1, 2, num_blocks=2, block_size=2)
    cache.add(0)
    with pytest.raises(OutOfBlocks):
        cache.reserve(0, 5)
    assert cache.lengths[0] == 0 and cache.allocator.num_used == 0  # nothing changed
    with pytest.raises(ValueError, match="already"):
        cache.add(0)
    with pytest.raises(KeyError, match="seq"):
        cache.reserve(1, 1)
    with pytest.raises(ValueError, match="max_len"):
        gather_kv(cache.k_pool[0], torch.zeros(1, 1, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="lengths"):
        paged_attention(torch.randn(1, 1, 1, 2), cache.k_pool[0], cache.v_pool[0],
                        torch.zeros(1, 1, dtype=torch.long), torch.tensor([0]))
    with pytest.raises(ValueError, match="block_size"):
        PagedKVCache(1, 1, 2, num_blocks=2, block_size=0)
