"""roadmap_lib.chapters.ch13_flashattention_kernels.io_complexity: byte counts of naive and tiled attention (chapter 13)."""

import math

import pytest

from roadmap_lib.chapters.ch13_flashattention_kernels.io_complexity import (
    attention_flops,
    flash_attention_traffic,
    flash_reads_closed_form,
    naive_attention_traffic,
)


def test_naive_counts_by_hand():
    t = naive_attention_traffic(1, 1, 4, 6, 2, bytes_per_element=1)
    # reads: Q 8 + K 12, S 24, P 24 + V 12; writes: S 24, P 24, O 8
    assert (t.reads, t.writes, t.total) == (80, 56, 136)
    assert naive_attention_traffic(2, 3, 4, 6, 2, bytes_per_element=2).total == 6 * 2 * 136


@pytest.mark.parametrize("lq, lk, bm", [(1, 1, 16), (100, 37, 16), (1024, 1024, 128), (130, 300, 64)])
def test_tiled_reads_closed_form(lq, lk, bm):
    t = flash_attention_traffic(2, 3, lq, lk, 32, block_m=bm, block_n=16)
    assert t.reads == flash_reads_closed_form(2, 3, lq, lk, 32, block_m=bm)
    assert t.writes == 2 * 3 * lq * (32 * 2 + 4)


def test_causal_reads_about_half():
    full = flash_attention_traffic(1, 1, 8192, 8192, 64, block_m=128, block_n=64)
    causal = flash_attention_traffic(1, 1, 8192, 8192, 64, block_m=128, block_n=64, causal=True)
    kv_full, kv_causal = full.reads - 8192 * 64 * 2, causal.reads - 8192 * 64 * 2
    assert 0.5 < kv_causal / kv_full < 0.52
    assert causal.writes == full.writes


def test_flops_and_validation():
    assert attention_flops(4, 32, 1024, 1024, 64) == 4 * 4 * 32 * 1024 * 1024 * 64
    assert attention_flops(1, 1, 8, 8, 16, causal=True) == 4 * 8 * 8 * 16 / 2
    assert math.isclose(
        attention_flops(1, 1, 4096, 4096, 64) / naive_attention_traffic(1, 1, 4096, 4096, 64).total, 31.5, rel_tol=0.01
    )
    with pytest.raises(ValueError, match="d: expected a positive int"):
        naive_attention_traffic(1, 1, 4, 4, 0)
    with pytest.raises(ValueError, match="causal=True needs lq == lk"):
        flash_attention_traffic(1, 1, 4, 5, 16, causal=True)
