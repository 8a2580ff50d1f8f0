"""The measuring tools and small models behind chapter 04's experiments."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from roadmap_lib.attention import scaled_dot_product_attention
from roadmap_lib.core_experiments import (
    BitClassifier,
    TinyLM,
    attention_scaling,
    bit_task_batch,
    count_parameters,
    ffn_width_for_params,
    fit_power_law,
    offset_heads_attention,
    peak_memory,
    smooth,
)
from roadmap_lib.core_plots import plot_scaling
from roadmap_lib.layers import BlockConfig


def test_peak_memory_sees_live_tensors_only():
    x = torch.randn(1000)  # created outside: not counted

    def two_alive():
        a = x * 2  # 4000 bytes
        b = a + 1  # 4000 bytes, both alive
        return b.sum()

    def one_at_a_time():
        for _ in range(3):
            (x * 2).sum()  # each product dies before the next one

    assert 8000 <= peak_memory(two_alive) < 8100
    assert 4000 <= peak_memory(one_at_a_time) < 4100


def test_fit_power_law_recovers_exponent():
    x = [10, 20, 40, 80]
    p, c = fit_power_law(x, [3.0 * n**2.5 for n in x])
    assert abs(p - 2.5) < 1e-9 and abs(c - 3.0) < 1e-9
    with pytest.raises(ValueError, match="at least 2 points"):
        fit_power_law([1], [1])


def test_attention_scaling_memory_exponents():
    res = attention_scaling(
        {"ours": scaled_dot_product_attention, "torch": F.scaled_dot_product_attention},
        [64, 128, 256], repeats=1, heads=1, head_dim=8,
    )
    p_ours = fit_power_law(res["ours"]["length"], res["ours"]["bytes"])[0]
    p_torch = fit_power_law(res["torch"]["length"], res["torch"]["bytes"])[0]
    assert 1.7 < p_ours < 2.2 and p_torch < 1.2
    plot_scaling(res)


def test_ffn_width_gives_equal_parameters():
    counts = []
    for act in ("gelu", "swiglu"):
        cfg = BlockConfig(d_model=32, n_heads=4, activation=act, bias=False,
                          d_ff=ffn_width_for_params(32, 96, act == "swiglu"))
        counts.append(count_parameters(TinyLM(50, 16, cfg, 2)))
    assert counts[0] == counts[1]


def test_bit_tasks_labels():
    g = torch.Generator().manual_seed(0)
    bits, y = bit_task_batch("parity", 7, 200, g)
    assert torch.equal(y, bits.sum(1) % 2)
    bits, y = bit_task_batch("majority", 7, 200, g)
    assert torch.equal(y, (bits.sum(1) >= 4).long())
    bits, y = bit_task_batch("adjacent", 12, 4000, g)
    strings = ["".join(map(str, row.tolist())) for row in bits]
    assert y.tolist() == [int("11" in s) for s in strings]
    assert 0.4 < y.float().mean() < 0.6  # about balanced
    with pytest.raises(ValueError, match="task: expected"):
        bit_task_batch("sort", 4, 2)
    for kw in ({}, {"positions": False, "front": "conv"}):
        assert BitClassifier(12, **kw)(bits[:5]).shape == (5, 2)
    with pytest.raises(ValueError, match="front"):
        BitClassifier(12, front="lstm")


def test_offset_heads_attention():
    w = offset_heads_attention(10, 3, sharpness=20.0, mask="none")
    assert torch.allclose(w.sum(-1), torch.ones(3, 10))
    # head h looks h steps back wherever that position exists
    for h in range(3):
        assert torch.equal(w[h, h:].argmax(-1), torch.arange(10 - h))
    w = offset_heads_attention(10, 2, mask="padding", pad=3)
    assert torch.all(w[..., 7:] == 0)
    w = offset_heads_attention(10, 2, mask="sliding", window=2)
    assert torch.all(w.triu(1) == 0) and torch.all(w.tril(-2) == 0)
    with pytest.raises(ValueError, match="mask"):
        offset_heads_attention(mask="diagonal")


def test_smooth():
    assert smooth([1, 3, 5, 7], window=2) == [1, 2, 4, 6]
