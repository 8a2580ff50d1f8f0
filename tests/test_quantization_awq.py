"""roadmap_lib.quantization.awq: the α search never loses to round-to-nearest on its calibration
objective, wins clearly when a few input channels carry large activations, and folding the scales
into the previous norm or linear layer leaves the network's function unchanged."""

from __future__ import annotations

import pytest
import torch
from test_quantization_rtn import refuses
from torch import nn

from roadmap_lib.layers import BlockConfig, TransformerBlock
from roadmap_lib.quantization.awq import activation_scale, awq_search, fold_scales
from roadmap_lib.quantization.rtn import fake_quantize


def salient_layer(seed, rows=64, cols=128, tokens=1024):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * 0.05
    x = torch.randn(tokens, cols, generator=g)
    x[:, torch.randperm(cols, generator=g)[:4]] *= 20  # four salient input channels
    return w, x


def output_error(w, w_hat, x):
    return float(((x @ w_hat.t() - x @ w.t()) ** 2).mean())


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("bits, scheme, granularity", [(4, "absmax", "channel"), (3, "absmax", 32),
                                                       (4, "zeropoint", 32)])
def test_never_worse_than_rtn_and_much_better_with_salient_channels(seed, bits, scheme, granularity):
    w, x = salient_layer(seed)
    result = awq_search(w, x, bits, scheme, granularity, n_grid=10)
    rtn = output_error(w, fake_quantize(w, bits, scheme, granularity), x)
    assert result.errors[0][0] == 0 and result.errors[0][1] == pytest.approx(rtn, rel=1e-5)  # α = 0 is RTN
    s = result.scales
    awq = output_error(w, fake_quantize(w * s, bits, scheme, granularity) / s, x)
    assert awq == pytest.approx(min(e for _, e in result.errors), rel=1e-5)
    assert awq <= rtn and result.alpha > 0
    assert awq < 0.5 * rtn  # measured: 0.23-0.37 of RTN on these layers


def test_scales_follow_the_activations():
    w, x = salient_layer(0)
    s = awq_search(w, x, 4, "absmax", "channel", n_grid=10).scales
    act = activation_scale(x)
    assert s.shape == (128,) and torch.equal(s.argsort(), act.argsort())  # s = act^α, monotone
    assert (s.max() * s.min()).item() == pytest.approx(1.0, rel=1e-4)  # centred on 1


def _block(norm, gated):
    torch.manual_seed(0)
    c = BlockConfig(d_model=32, n_heads=4, d_ff=64, norm=norm, activation="silu" if gated else "gelu",
                    gated=gated, causal=True)
    block = TransformerBlock(c).eval()
    with torch.no_grad():  # norms away from their identity init, so folding is really tested
        for m in (block.attn_norm, block.ffn_norm):
            m.weight.uniform_(0.5, 1.5)
            if getattr(m, "bias", None) is not None:
                m.bias.uniform_(-0.5, 0.5)
    return block


@pytest.mark.parametrize("norm, gated", [("layernorm", False), ("rmsnorm", True)])
def test_folding_preserves_the_function(norm, gated):
    block = _block(norm, gated)
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        before = block(x)
        g = torch.Generator().manual_seed(1)
        attn, ffn = block.attn, block.ffn
        qkv = [attn.q_proj, attn.k_proj, attn.v_proj]
        fold_scales(block.attn_norm, qkv, torch.rand(32, generator=g) * 4 + 0.1)
        first = [ffn.up_proj] + ([ffn.gate_proj] if gated else [])
        fold_scales(block.ffn_norm, first, torch.rand(32, generator=g) * 4 + 0.1)
        if gated:  # down(act(gate x) · up x): up's output rows can take down's input scales
            fold_scales(ffn.up_proj, [ffn.down_proj], torch.rand(64, generator=g) * 4 + 0.1)
        after = block(x)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_folded_awq_block_beats_rtn_on_qkv():
    """One s for q, k and v (they read the same input), searched on their concatenated weights."""
    block = _block("layernorm", False)
    x = torch.randn(8, 16, 32)
    x[..., :2] *= 10
    with torch.no_grad():
        h = block.attn_norm(x)
        attn = block.attn
        w = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        result = awq_search(w, h, 3, "absmax", 16)
        fold_scales(block.attn_norm, [attn.q_proj, attn.k_proj, attn.v_proj], result.scales)
        h2 = block.attn_norm(x)
        torch.testing.assert_close(h2, h / result.scales, rtol=1e-5, atol=1e-6)
        w2 = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        awq = output_error(w, fake_quantize(w2, 3, "absmax", 16) / result.scales, h.reshape(-1, 32))
        rtn = output_error(w, fake_quantize(w, 3, "absmax", 16), h.reshape(-1, 32))
    assert awq <= rtn


@pytest.mark.parametrize("call, error, words", [
    (lambda: awq_search(torch.randn(4, 8), torch.randn(10, 7)), ValueError, ["x", "(..., 8)", "(10, 7)"]),
    (lambda: awq_search(torch.randn(4, 8), torch.randn(10, 8), bits=9), ValueError, ["bits", "9"]),
    (lambda: awq_search(torch.randn(4, 8), torch.randn(10, 8), granularity=3), ValueError, ["granularity", "3"]),
    (lambda: awq_search(torch.randn(4, 8), torch.randn(10, 8), n_grid=0), ValueError, ["n_grid", "0"]),
    (lambda: awq_search(torch.randn(8), torch.randn(10, 8)), ValueError, ["w", "2-D"]),
    (lambda: fold_scales(nn.LayerNorm(8), [nn.Linear(8, 4)], torch.ones(7)), ValueError, ["scales", "(8,)", "(7,)"]),
    (lambda: fold_scales(nn.LayerNorm(8), [nn.Linear(8, 4)], -torch.ones(8)), ValueError, ["scales", "positive"]),
    (lambda: fold_scales(nn.LayerNorm(8), [nn.Linear(8, 4), nn.Linear(6, 4)], torch.ones(8)),
     ValueError, ["linears", "in_features=8", "6"]),
    (lambda: fold_scales(nn.LayerNorm(8), [], torch.ones(8)), TypeError, ["linears"]),
    (lambda: fold_scales(nn.Linear(3, 5), [nn.Linear(8, 4)], torch.ones(8)), ValueError, ["prev", "out_features=8"]),
    (lambda: fold_scales(nn.GELU(), [nn.Linear(8, 4)], torch.ones(8)), TypeError, ["prev", "GELU"]),
])
def test_refusals_name_the_argument(call, error, words):
    refuses(call, error, words)
