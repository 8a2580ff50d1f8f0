"""roadmap_lib.diffusion: the schedule, the closed-form forward process, the samplers' steps, and the
DiT's adaLN-Zero start, checked against hand-derived values and the formulas of the DDPM and DDIM
papers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.diffusion import (
    DiT,
    DiTBlock,
    DiTConfig,
    NoiseSchedule,
    cosine_schedule,
    ddim_step,
    ddpm_step,
    diffusion_loss,
    linear_schedule,
    modulate,
    predict_x0,
    q_mean_std,
    q_sample,
    sample,
    sampling_steps,
    timestep_embedding,
)

TINY = DiTConfig(image_size=4, patch_size=2, channels=1, d_model=8, n_layers=2, n_heads=2, num_classes=3, freq_dim=8)


def test_alpha_bar_is_the_running_product_by_hand():
    s = NoiseSchedule(torch.tensor([0.1, 0.2, 0.5]))
    assert torch.allclose(s.alpha_bar, torch.tensor([0.9, 0.72, 0.36], dtype=torch.float64))
    assert s.ab(torch.tensor([-1, 0, 2])).tolist() == pytest.approx([1.0, 0.9, 0.36])


def test_linear_schedule_is_ddpms_at_1000_steps_and_scaled_otherwise():
    s = linear_schedule(1000)
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    assert s.alpha_bar[-1].item() == pytest.approx(4.04e-5, rel=0.02)  # DDPM's x_T is nearly pure noise
    short = linear_schedule(200)
    assert short.betas[-1].item() == pytest.approx(0.1)
    assert short.alpha_bar[-1].item() < 1e-4


def test_cosine_schedule_follows_its_closed_form():
    T, s = 100, 0.008
    sch = cosine_schedule(T, s=s)
    t = torch.arange(1, T + 1, dtype=torch.float64)
    f = lambda u: torch.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2
    want = f(t) / f(torch.zeros(1, dtype=torch.float64))
    assert torch.allclose(sch.alpha_bar[:-1], want[:-1], rtol=1e-10)  # the last beta is clipped
    assert sch.betas.max().item() == pytest.approx(0.999)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 199), st.integers(0, 2**31 - 1))
def test_q_sample_has_the_closed_form_moments(t, seed):
    n, sch = 5000, linear_schedule(200)
    gen = torch.Generator().manual_seed(seed)
    x0 = (torch.rand(1, 4, generator=gen) * 2 - 1).expand(n, 4)
    tt = torch.full((n,), t)
    xt = q_sample(sch, x0, tt, torch.randn(x0.shape, generator=gen))
    ab = sch.alpha_bar[t].item()
    sd = math.sqrt(1 - ab)
    # five standard errors: the mean's is sd / sqrt(n), the standard deviation's about sd / sqrt(2n)
    assert torch.allclose(xt.mean(0), math.sqrt(ab) * x0[0], atol=5 * sd / math.sqrt(n) + 1e-6)
    assert torch.allclose(xt.std(0), torch.full((4,), sd), rtol=5 / math.sqrt(2 * n), atol=1e-6)
    mean, std = q_mean_std(sch, x0[:2], tt[:2])
    assert torch.allclose(mean, math.sqrt(ab) * x0[:2]) and std.flatten()[0].item() == pytest.approx(math.sqrt(1 - ab), rel=1e-4)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 99), st.integers(0, 2**31 - 1))
def test_predict_x0_inverts_q_sample_with_the_true_noise(t, seed):
    sch = cosine_schedule(100)
    gen = torch.Generator().manual_seed(seed)
    x0, eps = torch.randn(3, 1, 2, 2, generator=gen), torch.randn(3, 1, 2, 2, generator=gen)
    tt = torch.full((3,), t)
    assert torch.allclose(predict_x0(sch, q_sample(sch, x0, tt, eps), eps, tt), x0, atol=2e-3)


def test_a_ddim_step_to_the_clean_image_with_the_true_noise_recovers_x0():
    sch = linear_schedule(50)
    x0, eps = torch.rand(4, 1, 2, 2) * 2 - 1, torch.randn(4, 1, 2, 2)
    t = torch.tensor([0, 10, 30, 49])
    out = ddim_step(sch, q_sample(sch, x0, t, eps), eps, t, torch.full((4,), -1))
    assert torch.allclose(out, x0, atol=1e-4)


def test_a_deterministic_ddim_step_by_hand():
    sch = NoiseSchedule(torch.tensor([0.2, 0.5]))  # alpha_bar 0.8, 0.4
    x_t, eps = torch.tensor([[1.0]]), torch.tensor([[0.5]])
    x0 = (1.0 - math.sqrt(0.6) * 0.5) / math.sqrt(0.4)
    want = math.sqrt(0.8) * x0 + math.sqrt(0.2) * 0.5
    got = ddim_step(sch, x_t, eps, torch.tensor([1]), torch.tensor([0]))
    assert got.item() == pytest.approx(want, rel=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 99), st.integers(0, 2**31 - 1))
def test_ddim_with_eta_1_between_consecutive_steps_is_the_ddpm_step(t, seed):
    sch = linear_schedule(100)
    gen = torch.Generator().manual_seed(seed)
    x_t, eps, z = (torch.randn(2, 1, 2, 2, generator=gen) for _ in range(3))
    tt = torch.full((2,), t)
    a = ddim_step(sch, x_t, eps, tt, tt - 1, eta=1.0, noise=z)
    b = ddpm_step(sch, x_t, eps, tt, z)
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_the_last_ddpm_step_adds_no_noise():
    sch = cosine_schedule(10)
    x_t, eps = torch.randn(2, 3), torch.randn(2, 3)
    t = torch.zeros(2, dtype=torch.long)
    assert torch.equal(ddpm_step(sch, x_t, eps, t, torch.randn(2, 3)), ddpm_step(sch, x_t, eps, t, torch.zeros(2, 3)))


def test_sampling_steps_span_the_schedule():
    assert sampling_steps(200, 50)[0] == 199 and sampling_steps(200, 50)[-1] == 0
    assert len(sampling_steps(200, 50)) == 50 and sampling_steps(10, 10) == list(range(9, -1, -1))
    with pytest.raises(ValueError, match="steps: expected an int in"):
        sampling_steps(10, 11)


def test_timestep_embedding_by_hand():
    e = timestep_embedding(torch.tensor([0, 1]), 4, max_period=100.0)  # frequencies 1, 0.1
    assert e[0].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert e[1].tolist() == pytest.approx([math.cos(1), math.cos(0.1), math.sin(1), math.sin(0.1)])


def test_adaln_zero_starts_every_block_as_the_identity_and_the_model_at_zero():
    torch.manual_seed(0)
    block = DiTBlock(TINY)
    x, c = torch.randn(3, 4, 8), torch.randn(3, 8)
    assert torch.equal(block(x, c), x)
    model = DiT(TINY)
    out = model(torch.randn(3, 1, 4, 4), torch.tensor([0, 5, 9]), torch.tensor([0, 1, 3]))
    assert out.shape == (3, 1, 4, 4) and torch.equal(out, torch.zeros_like(out))


def test_modulate_shifts_and_scales_per_example():
    x = torch.ones(2, 3, 4)
    out = modulate(x, torch.tensor([[1.0] * 4, [0.0] * 4]), torch.tensor([[0.0] * 4, [1.0] * 4]))
    assert out[0].eq(2.0).all() and out[1].eq(2.0).all()


def test_the_condition_changes_the_output_once_trained_away_from_zero():
    torch.manual_seed(0)
    model = DiT(TINY)
    for p in model.parameters():  # leave the adaLN-Zero start
        torch.nn.init.normal_(p, std=0.3)
    x, t = torch.randn(2, 1, 4, 4), torch.tensor([3, 3])
    a, b = model(x, t, torch.tensor([0, 0])), model(x, t, torch.tensor([1, 3]))
    assert not torch.allclose(a, b)
    assert not torch.allclose(model(x, torch.tensor([3, 40]), torch.tensor([0, 0]))[1], a[1])


@pytest.mark.slow
def test_a_few_steps_of_training_lower_the_loss_and_sampling_has_the_right_shape():
    torch.manual_seed(0)
    model, sch = DiT(TINY), cosine_schedule(20)
    x0, y = torch.rand(32, 1, 4, 4) * 2 - 1, torch.randint(0, 3, (32,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for i in range(40):
        loss = diffusion_loss(model, sch, x0, y, generator=torch.Generator().manual_seed(i % 4), p_uncond=0.2,
                              null_label=TINY.null_label)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-4:]) < 0.9 * sum(losses[:4])
    labels = torch.tensor([0, 1, 2, 3])
    out = sample(model, sch, labels, (1, 4, 4), steps=5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 1, 4, 4) and out.abs().max() <= 1.0 + 1e-6  # the last step lands on the clipped x0
    guided, traj = sample(model, sch, labels, (1, 4, 4), steps=5, guidance=2.0, null_label=3,
                          generator=torch.Generator().manual_seed(0), return_trajectory=True)
    assert len(traj) == 6 and torch.equal(traj[-1], guided)
    again = sample(model, sch, labels, (1, 4, 4), steps=5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_clear_errors():
    sch = cosine_schedule(10)
    model = DiT(TINY)
    with pytest.raises(ValueError, match="betas: expected every value in"):
        NoiseSchedule(torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match="T: expected an int >= 2"):
        linear_schedule(1)
    with pytest.raises(ValueError, match="T: expected T > 20 for beta_end=0.02"):
        linear_schedule(20)
    with pytest.raises(ValueError, match=r"t: expected steps in \[0, 9\]"):
        q_sample(sch, torch.zeros(2, 3), torch.tensor([0, 10]), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="t: expected an integer tensor of shape"):
        q_sample(sch, torch.zeros(2, 3), torch.tensor([0.5, 1.0]), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="noise: expected the shape of x0"):
        q_sample(sch, torch.zeros(2, 3), torch.tensor([0, 1]), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="t_prev: expected every t_prev < t"):
        ddim_step(sch, torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([3]), torch.tensor([3]))
    with pytest.raises(ValueError, match="noise: expected a tensor like x_t when eta > 0"):
        ddim_step(sch, torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([3]), torch.tensor([2]), eta=1.0)
    with pytest.raises(ValueError, match="x: expected \\(batch, 1, 4, 4\\)"):
        model(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"labels: expected ids in \[0, 3\]"):
        model(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="t: expected an integer tensor of shape \\(2,\\)"):
        model(torch.zeros(2, 1, 4, 4), torch.tensor([0]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="null_label: expected the null class's id when p_uncond > 0"):
        diffusion_loss(model, sch, torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), p_uncond=0.1)
    with pytest.raises(ValueError, match="null_label: expected the null class's id for guidance"):
        sample(model, sch, torch.tensor([0]), (1, 4, 4), steps=2, guidance=2.0)
    with pytest.raises(ValueError, match="n_heads: expected a divisor of d_model"):
        DiTConfig(d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="patch_size: expected a divisor of image_size"):
        DiTConfig(image_size=8, patch_size=3)
