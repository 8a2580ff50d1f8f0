"""Adafactor written out equals transformers.optimization.Adafactor; its state is factored."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.optim import Adafactor, AdamW, optimizer_state_nbytes

hf_optimization = pytest.importorskip("transformers.optimization")


def _model(seed=0):
    torch.manual_seed(seed)
    # a 3-d parameter too: Adafactor factors over the last two dimensions
    m = torch.nn.Sequential(torch.nn.Embedding(11, 8), torch.nn.Linear(8, 16), torch.nn.LayerNorm(16),
                            torch.nn.Linear(16, 11))
    m.register_parameter("cube", torch.nn.Parameter(torch.randn(2, 3, 11) * 0.1))
    return m


def _run(model, opt, steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randint(0, 11, (4, 5), generator=g)
        logits = model(x) + model.cube.sum(0).mean(0)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), x.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()


OPTIONS = [
    {},  # the paper's defaults: relative step, parameter scaling, no first moment
    {"relative_step": False, "scale_parameter": False, "lr": 1e-2},
    {"relative_step": False, "lr": 3e-2, "beta1": 0.9, "weight_decay": 0.1},
    {"warmup_init": True, "clip_threshold": 0.5, "decay_rate": -0.5},
]


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "fixed-lr", "beta1-decay", "warmup-clip"])
def test_adafactor_matches_transformers(options):
    ours, ref = _model(), _model()
    opt = Adafactor(ours.parameters(), **options)
    opt_ref = hf_optimization.Adafactor(ref.parameters(), **options)
    _run(ours, opt, 12)
    _run(ref, opt_ref, 12)
    moved = 0.0
    for (name, a), b, c in zip(ours.named_parameters(), ref.parameters(), _model().parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0), f"{name} differs by {(a - b).abs().max().item()}"
        moved = max(moved, (a - c).abs().max().item())
    assert moved > 1e-4  # the parameters really moved
    for p, q in zip(ours.parameters(), ref.parameters()):
        for k, v in opt.state[p].items():
            if isinstance(v, torch.Tensor):
                assert torch.allclose(v, opt_ref.state[q][k], rtol=1e-5, atol=1e-12), k


def test_state_is_factored_and_smaller_than_adamw():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 32, bias=False)
    lin(torch.randn(3, 64)).sum().backward()
    opt = Adafactor([lin.weight])
    opt.step()
    state = opt.state[lin.weight]
    assert state["exp_avg_sq_row"].shape == (32,) and state["exp_avg_sq_col"].shape == (64,)
    assert "exp_avg" not in state
    assert optimizer_state_nbytes(opt) == (32 + 64) * 4
    adam = AdamW([lin.weight])
    adam.step()
    assert optimizer_state_nbytes(adam) == 2 * 32 * 64 * 4 + 4


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 10_000))
def test_factored_second_moment_is_exact_for_rank_one(n, m, seed):
    """If G = a bᵀ then G² is rank one and R Cᵀ / mean(R) recovers it exactly: the first update
    (beta2_1 = 0, so V = G²) is G / |G| = sign(G) in every entry."""
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(n, generator=g) + 0.1) * torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    b = torch.rand(m, generator=g) + 0.1
    p = torch.nn.Parameter(torch.zeros(n, m))
    p.grad = torch.outer(a, b)
    Adafactor([p], relative_step=False, scale_parameter=False, lr=1.0).step()
    torch.testing.assert_close(p.detach(), -torch.sign(p.grad), atol=1e-5, rtol=0)


def _second_step_rms(clip_threshold):
    """A small gradient, then a sudden large one: the second update's RMS."""
    p = torch.nn.Parameter(torch.ones(4))
    opt = Adafactor([p], relative_step=False, scale_parameter=False, lr=1.0, clip_threshold=clip_threshold)
    p.grad = torch.full((4,), 1e-3)
    opt.step()
    before = p.detach().clone()
    p.grad = torch.ones(4)
    opt.step()
    return (p.detach() - before).pow(2).mean().sqrt().item()


def test_update_clipping_bounds_update_rms():
    # beta2_2 = 1 - 2**-0.8, so v = (1 - beta2_2) g² and the unclipped update is 1/sqrt(2**-0.8)
    assert _second_step_rms(1e9) == pytest.approx(2 ** 0.4, rel=1e-5)
    assert _second_step_rms(1.0) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": 1e-3}, "lr: expected None with relative_step=True"),
    ({"relative_step": False}, "lr: expected a float > 0"),
    ({"relative_step": False, "lr": 1e-3, "warmup_init": True}, "warmup_init"),
    ({"beta1": 1.5}, "beta1"),
    ({"decay_rate": 0.8}, "decay_rate"),
    ({"clip_threshold": 0.0}, "clip_threshold"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adafactor([torch.nn.Parameter(torch.zeros(2))], **kwargs)
