"""The measuring tools and small models behind chapter 04's experiments."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from roadmap_lib.attention import scaled_dot_product_attention
from roadmap_lib.chapters.ch04_core_components.experiments import (
    BitClassifier,
    BitGRU,
    BlockStackLM,
    attention_scaling,
    bit_task_batch,
    ffn_width_for_params,
    offset_heads_attention,
)
from roadmap_lib.chapters.ch04_core_components.plots import plot_scaling
from roadmap_lib.layers import BlockConfig
from roadmap_lib.measure import count_parameters
from roadmap_lib.scaling import fit_power_law


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
        counts.append(count_parameters(BlockStackLM(50, 16, cfg, 2)))
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
    for kw in ({}, {"positions": False, "front": "conv"}, {"positions": False, "front": "gru"}):
        assert BitClassifier(12, **kw)(bits[:5]).shape == (5, 2)
    assert BitGRU()(bits[:5]).shape == (5, 2)


def test_order_aware_front_ends_break_permutation_invariance():
    # without positions the plain model sees a multiset: permuting the bits cannot change its output;
    # a convolution or a GRU in front makes it order-aware (the point of the chapter's hybrids)
    torch.manual_seed(0)
    bits = torch.randint(0, 2, (64, 12))
    perm = torch.randperm(12)
    for front, invariant in ((None, True), ("conv", False), ("gru", False)):
        model = BitClassifier(12, positions=False, front=front).eval()
        same = torch.allclose(model(bits), model(bits[:, perm]), atol=1e-5)
        assert same == invariant, front
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




def test_xavier_init_and_grad_norms_at_init():
    from roadmap_lib.chapters.ch04_core_components.experiments import (
        grad_norms_at_init,
        xavier_init_,
    )
    from roadmap_lib.chapters.ch04_core_components.plots import plot_grad_norms

    torch.manual_seed(0)
    layer = xavier_init_(torch.nn.Sequential(torch.nn.Linear(400, 200)))[0]
    assert layer.bias.abs().sum() == 0
    assert layer.weight.std().item() == pytest.approx((2 / 600) ** 0.5, rel=0.05)  # Glorot: 2 / (fan_in + fan_out)

    def get_batch(split, generator):
        x = torch.randint(0, 11, (4, 8), generator=generator)
        return x, x.roll(-1, 1)

    kw = {"prenorm": True, "n_layers": 3, "d_model": 16, "n_heads": 2}
    a = grad_norms_at_init(11, 8, get_batch, seed=0, **kw)
    assert len(a) == 3 and all(v > 0 for v in a)
    assert a == grad_norms_at_init(11, 8, get_batch, seed=0, **kw)  # seeded
    assert a != grad_norms_at_init(11, 8, get_batch, seed=1, **kw)
    with pytest.raises(ValueError, match="n_layers: expected at least 1"):
        grad_norms_at_init(11, 8, get_batch, prenorm=False, n_layers=0, seed=0)
    ax = plot_grad_norms({"pre-norm": torch.tensor([a, a])})
    assert len(ax.lines) == 3


def test_fast_path_models_compute_the_same_function():
    """BitClassifier and BlockStackLM on attention_backend="sdpa", fused_ops=True (the chapter's
    FAST settings) equal the written-out models with the same weights."""
    fast = {"attention_backend": "sdpa", "fused_ops": True}
    bits = torch.randint(0, 2, (8, 15), generator=torch.Generator().manual_seed(0))
    for front in (None, "conv"):
        torch.manual_seed(0)
        slow_bits = BitClassifier(15, front=front).eval()
        fast_bits = BitClassifier(15, front=front, **fast).eval()
        fast_bits.load_state_dict(slow_bits.state_dict())
        assert fast_bits.blocks[0].attn.config.backend == "sdpa" and fast_bits.blocks[0].ffn_norm.fused
        assert torch.allclose(fast_bits(bits), slow_bits(bits), atol=1e-5)
    for prenorm in (True, False):
        torch.manual_seed(0)
        slow_lm = BlockStackLM(20, 16, BlockConfig(d_model=32, n_heads=4, causal=True, prenorm=prenorm), 2).eval()
        fast_lm = BlockStackLM(20, 16, BlockConfig(d_model=32, n_heads=4, causal=True, prenorm=prenorm, **fast), 2)
        fast_lm.load_state_dict(slow_lm.state_dict())
        assert not prenorm or fast_lm.norm.fused  # the final norm follows the blocks' setting
        ids = torch.randint(0, 20, (3, 16), generator=torch.Generator().manual_seed(1))
        assert torch.allclose(fast_lm.eval()(ids), slow_lm(ids), atol=1e-5)
