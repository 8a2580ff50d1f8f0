"""``fused_ops``: norms and activations as one PyTorch kernel each compute the written-out functions.

The written-out versions in ``roadmap_lib.layers`` are what chapter 04 teaches; ``fused=True``
(``fused_ops=True`` in a block or model config) swaps in ``F.layer_norm``, ``F.rms_norm`` and
``F.gelu``/``F.silu``/``F.relu`` for speed (benchmarks/train_lm.py measures it). Same parameters,
same function: forward and backward agree to float rounding, and shipped checkpoints load either way.
"""

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib import zoo
from roadmap_lib.layers import (ACTIVATIONS, FUSED_ACTIVATIONS, BlockConfig, FeedForward, LayerNorm,
                                RMSNorm, TransformerBlock)
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.models.llama import Llama, LlamaConfig

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _fwd_bwd(module, x):
    x = x.clone().requires_grad_(True)
    module.zero_grad()
    y = module(x)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
    return y.detach(), x.grad, [p.grad.clone() for p in module.parameters()]


def _assert_same(a, b, tol):
    (ya, gxa, gpa), (yb, gxb, gpb) = a, b
    assert torch.allclose(ya, yb, atol=tol, rtol=0), (ya - yb).abs().max()
    assert torch.allclose(gxa, gxb, atol=tol, rtol=0), (gxa - gxb).abs().max()
    for p, q in zip(gpa, gpb, strict=True):
        assert torch.allclose(p, q, atol=tol, rtol=0), (p - q).abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["layernorm", "layernorm_nobias", "rmsnorm", "rmsnorm_eps"])
def test_fused_norms_equal_the_written_out_ones(kind, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 24, generator=g, dtype=dtype) * 3 + 1

    def make(fused):
        if kind.startswith("layernorm"):
            m = LayerNorm(24, 1e-5, bias=kind == "layernorm", fused=fused)
        else:
            m = RMSNorm(24, 1e-6 if kind == "rmsnorm_eps" else None, fused=fused)
        m = m.to(dtype)
        with torch.no_grad():
            for p in m.parameters():  # not the trivial ones/zeros init
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=dtype))
        return m

    _assert_same(_fwd_bwd(make(False), x), _fwd_bwd(make(True), x), TOL[dtype])


def test_fused_rmsnorm_keeps_the_float32_upcast_in_bfloat16():
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16) * 5
    slow, fast = RMSNorm(64), RMSNorm(64, fused=True)
    assert fast(x).dtype == slow(x).dtype
    assert torch.equal(slow(x), fast(x))


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(ACTIVATIONS)),
       values=st.lists(st.floats(-30, 30, allow_nan=False), min_size=1, max_size=50))
def test_fused_activations_equal_the_written_out_ones(name, values):
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    y1 = ACTIVATIONS[name](x)
    (g1,) = torch.autograd.grad(y1.sum(), x)
    y2 = FUSED_ACTIVATIONS[name](x)
    (g2,) = torch.autograd.grad(y2.sum(), x)
    assert torch.allclose(y1, y2, atol=1e-10, rtol=0)
    # at exactly 0 ReLU has no derivative: the written-out clamp_min passes the gradient (1),
    # F.relu blocks it (0); everywhere else they agree
    keep = x.detach() != 0 if name == "relu" else torch.ones_like(x, dtype=torch.bool)
    assert torch.allclose(g1[keep], g2[keep], atol=1e-9, rtol=0)


@pytest.mark.parametrize("activation,gated", [("gelu_tanh", False), ("gelu", False), ("swiglu", True),
                                              ("relu", False)])
def test_fused_feedforward_and_block(activation, gated):
    torch.manual_seed(0)
    slow = FeedForward(16, 40, activation, gated).double()
    fast = FeedForward(16, 40, activation, gated, fused=True).double()
    fast.load_state_dict(slow.state_dict())
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    _assert_same(_fwd_bwd(slow, x), _fwd_bwd(fast, x), 1e-10)

    cfg = BlockConfig(d_model=16, n_heads=4, activation=activation, causal=True)
    block = TransformerBlock(cfg).double()
    fused = TransformerBlock(dataclasses.replace(cfg, fused_ops=True, attention_backend="sdpa")).double()
    fused.load_state_dict(block.state_dict())
    _assert_same(_fwd_bwd(block, x), _fwd_bwd(fused, x), 1e-10)


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_models_with_fused_ops_compute_the_same_logits_and_gradients(family):
    torch.manual_seed(0)
    if family == "gpt":
        cfg = GPTConfig(vocab_size=40, context_length=16, n_layers=2, n_heads=4, d_model=32)
        make = lambda **kw: GPT(dataclasses.replace(cfg, **kw))  # noqa: E731
    else:
        cfg = LlamaConfig(vocab_size=40, context_length=16, n_layers=2, n_heads=4, n_kv_heads=2, d_model=32)
        make = lambda **kw: Llama(dataclasses.replace(cfg, **kw))  # noqa: E731
    slow = make().double()
    fast = make(fused_ops=True, attention_backend="sdpa").double()
    fast.load_state_dict(slow.state_dict(), strict=True)
    ids = torch.randint(0, 40, (3, 16), generator=torch.Generator().manual_seed(2))
    out = []
    for m in (slow, fast):
        m.zero_grad()
        logits = m(ids)
        logits.logsumexp(-1).sum().backward()
        out.append((logits.detach(), [p.grad.clone() for p in m.parameters()]))
    assert torch.allclose(out[0][0], out[1][0], atol=1e-10, rtol=0)
    for a, b in zip(out[0][1], out[1][1], strict=True):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)


def test_the_shipped_char_gpt_loads_with_fused_ops_and_gives_the_same_logits():
    model, vocab, _ = zoo.load_char_gpt()
    fast = GPT(dataclasses.replace(model.config, fused_ops=True, attention_backend="sdpa")).eval()
    fast.load_state_dict(model.state_dict(), strict=True)
    ids = vocab.encode("The hacker ethic is a ")[None]
    with torch.no_grad():
        a, b = model(ids), fast(ids)
    assert (a - b).abs().max() < 1e-4
    assert torch.equal(a.argmax(-1), b.argmax(-1))
