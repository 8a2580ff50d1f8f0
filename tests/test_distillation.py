"""Knowledge distillation losses (roadmap_lib.objectives): the hand-derived formula, PyTorch's
kl_div conventions, the T^2 gradient scale, and the language-model loss_fn."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.objectives import (
    distillation_loss,
    lm_distillation_loss,
    lm_loss,
    soft_target_loss,
)


def _logits(*shape, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale


def test_soft_target_loss_is_the_hand_written_kl_times_t_squared():
    s, t = _logits(6, 5, seed=0), _logits(6, 5, seed=1)
    for T in (1.0, 2.0, 4.5):
        p = (t / T).exp() / (t / T).exp().sum(-1, keepdim=True)       # teacher's soft targets
        q = (s / T).exp() / (s / T).exp().sum(-1, keepdim=True)       # student's
        want = T * T * (p * (p / q).log()).sum(-1).mean()             # KL(p || q), mean over rows
        torch.testing.assert_close(soft_target_loss(s, t, T), want, rtol=1e-5, atol=1e-6)


def test_kl_div_conventions_batchmean_and_log_target():
    s, t = _logits(4, 7, seed=2), _logits(4, 7, seed=3)
    log_q, log_p = F.log_softmax(s / 2, -1), F.log_softmax(t / 2, -1)
    ours = soft_target_loss(s, t, 2.0) / 4
    # log_target=False takes probabilities as the target: the same KL
    torch.testing.assert_close(ours, F.kl_div(log_q, log_p.exp(), reduction="batchmean"))
    # batchmean = sum / rows; "mean" divides by rows x classes as well, which is not a KL
    torch.testing.assert_close(ours, F.kl_div(log_q, log_p, log_target=True, reduction="sum") / 4)
    mean = (F.kl_div(log_q, log_p, log_target=True, reduction="none")).mean()
    torch.testing.assert_close(mean * 7, ours)


def test_leading_dims_are_rows():
    s, t = _logits(2, 3, 11, seed=4), _logits(2, 3, 11, seed=5)
    torch.testing.assert_close(soft_target_loss(s, t), soft_target_loss(s.reshape(6, 11), t.reshape(6, 11)))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.floats(0.5, 8.0), shift=st.floats(-5, 5))
def test_kl_is_nonnegative_zero_on_itself_and_shift_invariant(seed, T, shift):
    s, t = _logits(3, 6, seed=seed), _logits(3, 6, seed=seed + 1)
    assert soft_target_loss(s, t, T) >= -1e-6
    assert soft_target_loss(t, t, T).abs() < 1e-5
    torch.testing.assert_close(soft_target_loss(s + shift, t - shift, T), soft_target_loss(s, t, T),
                               rtol=1e-4, atol=1e-5)


def test_gradient_is_t_times_the_probability_gap():
    """d/dz_s of T^2 KL = T^2 * (q_T - p_T) / T / rows: the derivation in the chapter."""
    s, t = _logits(5, 9, seed=6).requires_grad_(), _logits(5, 9, seed=7)
    for T in (1.0, 3.0):
        (grad,) = torch.autograd.grad(soft_target_loss(s, t, T), s)
        want = T * ((s / T).softmax(-1) - (t / T).softmax(-1)) / 5
        torch.testing.assert_close(grad, want.detach(), rtol=1e-4, atol=1e-7)


def test_t_squared_keeps_the_gradient_scale_at_high_temperature():
    """For large T the gradient tends to the gap of centred logits / (classes x rows), independent
    of T; without the T^2 factor it would shrink like 1/T^2."""
    s, t = _logits(5, 9, seed=8, scale=1.0).requires_grad_(), _logits(5, 9, seed=9, scale=1.0)
    limit = ((s - s.mean(-1, keepdim=True)) - (t - t.mean(-1, keepdim=True))).detach() / (9 * 5)
    norms = []
    for T in (10.0, 50.0, 200.0):
        (grad,) = torch.autograd.grad(soft_target_loss(s, t, T), s)
        norms.append(grad.norm().item())
        # the next term of the expansion is O(1/T): 7 % off at T=10, 0.35 % at T=200 (measured)
        assert (grad - limit).norm() / limit.norm() < 0.9 / T
    assert max(norms) / min(norms) < 1.02
    (g1,) = torch.autograd.grad(soft_target_loss(s, t, 10.0) / 100, s)
    (g2,) = torch.autograd.grad(soft_target_loss(s, t, 40.0) / 1600, s)
    assert 14 < g1.norm() / g2.norm() < 18  # the unscaled KL's gradient falls by (40/10)^2


def test_teacher_gets_no_gradient():
    s, t = _logits(3, 4, seed=1).requires_grad_(), _logits(3, 4, seed=2).requires_grad_()
    soft_target_loss(s, t).backward()
    assert t.grad is None and s.grad is not None


def test_distillation_loss_mixes_soft_and_hard_on_kept_positions():
    s, t = _logits(2, 3, 5, seed=3), _logits(2, 3, 5, seed=4)
    y = torch.tensor([[0, 4, -100], [2, -100, 1]])
    keep = y != -100
    want = 0.3 * soft_target_loss(s[keep], t[keep], 2.0) + 0.7 * F.cross_entropy(s[keep], y[keep])
    torch.testing.assert_close(distillation_loss(s, t, y, T=2.0, alpha=0.3), want)


def test_bad_inputs_name_the_argument():
    s = _logits(3, 4)
    with pytest.raises(ValueError, match="T: expected"):
        soft_target_loss(s, s, 0.0)
    with pytest.raises(ValueError, match="teacher_logits"):
        soft_target_loss(s, s[:2])
    with pytest.raises(ValueError, match="student_logits"):
        soft_target_loss(s[0], s[0])
    with pytest.raises(ValueError, match="labels"):
        distillation_loss(s, s, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(s, s, torch.zeros(3, dtype=torch.long), alpha=1.5)
    with pytest.raises(ValueError, match="alpha"):
        lm_distillation_loss(torch.nn.Identity(), alpha=-0.1)
    with pytest.raises(ValueError, match="T: expected"):
        lm_distillation_loss(torch.nn.Identity(), T=-1)


def test_lm_distillation_loss_fn_against_its_parts():
    torch.manual_seed(0)
    cfg = {"vocab_size": 13, "context_length": 8, "n_layers": 1, "n_heads": 2}
    teacher, student = GPT(GPTConfig(d_model=16, **cfg)).eval(), GPT(GPTConfig(d_model=8, **cfg))
    x, y = torch.randint(0, 13, (2, 8)), torch.randint(0, 13, (2, 8))
    torch.testing.assert_close(lm_distillation_loss(teacher, alpha=0.0)(student, x, y), lm_loss(student, x, y))
    soft = lm_distillation_loss(teacher, T=3.0, alpha=1.0)(student, x, y)
    torch.testing.assert_close(soft, soft_target_loss(student(x), teacher(x), 3.0))
    soft.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
