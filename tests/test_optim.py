"""AdamW written out equals torch.optim.AdamW bit for bit; schedule equals transformers'."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.optim import AdamW, clip_grad_norm, param_groups_with_decay, set_lr, warmup_cosine


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Embedding(11, 8), torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 11)
    )


def _run(model, opt, steps, seed=1, schedule=False):
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        if schedule:
            set_lr(opt, warmup_cosine(step, warmup_steps=3, total_steps=steps, min_ratio=0.1))
        x = torch.randint(0, 11, (4, 5), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), x.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adamw_bit_identical_to_torch(weight_decay):
    ours, ref = _model(), _model()
    groups = lambda m: [
        {"params": list(m[0].parameters()) + list(m[1].parameters()), "weight_decay": weight_decay},
        {"params": list(m[2].parameters()), "weight_decay": 0.0, "lr": 3e-3},
        {"params": list(m[3].parameters()), "betas": (0.8, 0.95), "eps": 1e-6},
    ]
    opt = AdamW(groups(ours), lr=1e-2, weight_decay=weight_decay)
    opt_ref = torch.optim.AdamW(groups(ref), lr=1e-2, weight_decay=weight_decay, foreach=False)
    _run(ours, opt, 25, schedule=True)
    _run(ref, opt_ref, 25, schedule=True)
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        assert torch.equal(a, b), f"{name} differs by {(a - b).abs().max().item()}"
    # the optimiser state is interchangeable as well
    sa, sb = opt.state_dict(), opt_ref.state_dict()
    for i in sb["state"]:
        for k in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sa["state"][i][k], sb["state"][i][k])


def test_adamw_loads_torch_state():
    ours, ref = _model(), _model()
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-2, foreach=False)
    _run(ref, opt_ref, 5)
    ours.load_state_dict(ref.state_dict())
    opt = AdamW(ours.parameters(), lr=1e-2)
    opt.load_state_dict(copy.deepcopy(opt_ref.state_dict()))  # torch shares tensors otherwise
    _run(ours, opt, 5, seed=2)
    _run(ref, opt_ref, 5, seed=2)
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_adamw_bad_arguments():
    with pytest.raises(ValueError, match="betas"):
        AdamW(_model().parameters(), betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="lr"):
        AdamW(_model().parameters(), lr=-1.0)


def test_param_groups_with_decay():
    groups = param_groups_with_decay(_model(), 0.1)
    assert all(p.dim() >= 2 for p in groups[0]["params"]) and groups[0]["weight_decay"] == 0.1
    assert all(p.dim() == 1 for p in groups[1]["params"]) and groups[1]["weight_decay"] == 0.0
    assert len(groups[0]["params"]) == 3 and len(groups[1]["params"]) == 4


@pytest.mark.parametrize("max_norm", [0.01, 1e3])
def test_clip_grad_norm_matches_torch(max_norm):
    a, b = _model(), _model()
    for m in (a, b):
        x = torch.arange(10).reshape(2, 5)
        m(x).square().sum().backward()
    na = clip_grad_norm(a.parameters(), max_norm)
    nb = torch.nn.utils.clip_grad_norm_(b.parameters(), max_norm, foreach=False)
    torch.testing.assert_close(na, nb, rtol=1e-6, atol=0)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=0)


@settings(max_examples=30, deadline=None)
@given(
    warmup=st.integers(0, 50),
    extra=st.integers(1, 500),
    min_ratio=st.floats(0.0, 1.0),
)

def test_warmup_cosine_matches_transformers(warmup, extra, min_ratio):
    from transformers.optimization import _get_cosine_schedule_with_warmup_lr_lambda as ref

    total = warmup + extra
    for step in range(0, total + 1, max(1, total // 37)):
        ours = warmup_cosine(step, warmup_steps=warmup, total_steps=total, min_ratio=min_ratio)
        theirs = ref(step, num_warmup_steps=warmup, num_training_steps=total, num_cycles=0.5, min_lr_rate=min_ratio)
        assert ours == theirs, (step, ours, theirs)


def test_warmup_cosine_shape_and_errors():
    f = lambda s: warmup_cosine(s, warmup_steps=100, total_steps=2000, min_ratio=0.1)
    assert f(0) == 0.0 and f(50) == 0.5 and f(100) == 1.0
    assert abs(f(2000) - 0.1) < 1e-12 and f(5000) == f(2000)
    assert all(f(s) >= f(s + 1) for s in range(100, 2000))
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(0, warmup_steps=10, total_steps=5)
