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


# ------------------------------------------------------------------- 8-bit optimiser states

from roadmap_lib.optim import (
    AdamW8bit,
    dequantize_blockwise,
    optimizer_state_nbytes,
    quantize_blockwise,
    unsigned_dynamic_code_book,
)
from roadmap_lib.quantization import dynamic_code_book


def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Embedding(64, 64), torch.nn.Linear(64, 128), torch.nn.GELU(),
                               torch.nn.Linear(128, 64))


def _train_flat(make_opt, steps, seed=1):
    """Train _mlp on a fixed modular-arithmetic task; (final flat params, initial flat params)."""
    m = _mlp()
    p0 = torch.cat([p.detach().flatten().clone() for p in m.parameters()])
    opt = make_opt(m.parameters())
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randint(0, 64, (32, 8), generator=g)
        loss = torch.nn.functional.cross_entropy(m(x).flatten(0, 1), ((x * 7 + 3) % 64).flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in m.parameters()]), p0


def test_unsigned_code_book_is_bitsandbytes():
    F = pytest.importorskip("bitsandbytes.functional")
    assert torch.equal(unsigned_dynamic_code_book(), F.create_dynamic_map(signed=False).sort().values)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 1000), scale=st.floats(1e-6, 1e3), seed=st.integers(0, 2**16))
def test_blockwise_round_trip_within_half_a_code_step(n, scale, seed):
    """Dequantised values are the nearest code × absmax: the error is at most half the largest gap
    of the code book times the block's absmax (plus, for a negative extreme, the distance from -1
    to the book's most negative code, -0.993: bitsandbytes' signed code has +1 but not -1), and
    zeros come back exactly."""
    x = torch.randn(n, generator=torch.Generator().manual_seed(seed)) * scale
    x[::7] = 0.0
    book = dynamic_code_book()
    codes, absmax = quantize_blockwise(x, book, block_size=64)
    back = dequantize_blockwise(codes, absmax, book, block_size=64)
    assert codes.dtype == torch.uint8 and codes.shape == x.shape and absmax.shape == (-(-n // 64),)
    per_value_absmax = absmax.repeat_interleave(64)[:n]
    bound = per_value_absmax * (book.diff().max() / 2 + (1 + book.min())) * (1 + 1e-6)
    assert torch.all((back - x).abs() <= bound)
    assert torch.all(back[::7] == 0)


def test_adamw8bit_first_step_equals_adamw():
    """Step 1 reads zero moments, which 8 bits store exactly: the same update as AdamW."""
    make = lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.01, foreach=False)
    ref, _ = _train_flat(make, 1)
    ours, _ = _train_flat(lambda ps: AdamW8bit(ps, lr=1e-2, weight_decay=0.01), 1)
    assert torch.allclose(ours, ref, atol=1e-7, rtol=0)


def test_adamw8bit_tracks_adamw_over_100_steps():
    """After 100 steps the parameters differ from float32 AdamW's by 3.8 % of the distance they
    moved (measured; bitsandbytes' AdamW8bit: the same); the bound 5 % trips on a broken
    quantiser (no absmax, wrong code book) while allowing the 8-bit rounding."""
    make = lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.01, foreach=False)
    ref, p0 = _train_flat(make, 100)
    ours, _ = _train_flat(lambda ps: AdamW8bit(ps, lr=1e-2, weight_decay=0.01), 100)
    rel = ((ours - ref).norm() / (ref - p0).norm()).item()
    assert 0.005 < rel < 0.05, rel  # really 8-bit (not identical), and close


def test_adamw8bit_matches_bitsandbytes_on_cpu():
    """bitsandbytes' AdamW8bit runs on CPU tensors here. Its CPU quantiser rounds some values to a
    neighbouring code rather than the nearest one, so the two drift apart slowly: after 100 steps
    by 1.0 % of the distance travelled (measured), well below the 3.8 % both are from AdamW."""
    bnb = pytest.importorskip("bitsandbytes")
    make = lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.01, foreach=False)
    ref, p0 = _train_flat(make, 100)
    ours, _ = _train_flat(lambda ps: AdamW8bit(ps, lr=1e-2, weight_decay=0.01), 100)
    theirs, _ = _train_flat(lambda ps: bnb.optim.AdamW8bit(ps, lr=1e-2, weight_decay=0.01), 100)
    moved = (ref - p0).norm()
    assert ((ours - theirs).norm() / moved).item() < 0.02
    gap_ours, gap_theirs = (ours - ref).norm() / moved, (theirs - ref).norm() / moved
    assert abs(gap_ours - gap_theirs).item() < 0.01


def test_adamw8bit_state_bytes():
    """Two uint8 codes per value plus one float32 absmax per 256 values, per moment; tensors under
    min_8bit_size keep two float32 moments."""
    big, small = torch.nn.Parameter(torch.randn(64, 100)), torch.nn.Parameter(torch.randn(10))
    opt = AdamW8bit([big, small], lr=1e-3)
    big.grad, small.grad = torch.randn_like(big), torch.randn_like(small)
    opt.step()
    blocks = -(-6400 // 256)
    expected = 2 * (6400 + 4 * blocks) + 2 * 4 * 10 + 2 * 4  # + two float32 step counters
    assert optimizer_state_nbytes(opt) == expected
    ref = torch.optim.AdamW([big, small], lr=1e-3, foreach=False)
    ref.step()
    assert optimizer_state_nbytes(ref) == 8 * 6410 + 2 * 4
    assert opt.state[big]["exp_avg"].dtype == torch.uint8


@pytest.mark.parametrize("kwargs, match", [
    ({"min_8bit_size": 0}, "min_8bit_size"), ({"lr": -1.0}, "lr"), ({"betas": (0.9, 1.0)}, "betas"),
])
def test_adamw8bit_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdamW8bit([torch.nn.Parameter(torch.zeros(3))], **kwargs)


def test_optimizer_state_nbytes_rejects_non_optimizer():
    with pytest.raises(TypeError, match="optimizer"):
        optimizer_state_nbytes([1, 2])
