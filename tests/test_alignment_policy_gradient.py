"""roadmap_lib.alignment.policy_gradient: GAE, PPO's clipped losses, KL estimators, GRPO, RLOO.

trl 1.16 has no PPO trainer, so GAE and PPO are checked against the papers' formulas written out
as plain loops here; GRPO's and RLOO's losses are also checked against trl in test_alignment_trl.py.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.alignment import (
    clipped_surrogate,
    discounted_returns,
    gae,
    grpo_advantages,
    grpo_loss,
    kl_estimate,
    kl_penalized_rewards,
    masked_reduce,
    ppo_policy_loss,
    ppo_value_loss,
    reinforce_loss,
    rloo_advantages,
    whiten,
)

unit = st.floats(0.0, 1.0)


def rollout(seed, batch=4, steps=7):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(batch, steps, generator=g, dtype=torch.float64)
    values = torch.randn(batch, steps, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, steps + 1, (batch,), generator=g)
    mask = torch.arange(steps)[None] < lengths[:, None]
    return rewards, values, mask, lengths.tolist()


def gae_by_hand(rewards, values, length, gamma, lam):
    """Schulman et al. (2016), eq. 16: A_t = Σ_l (γλ)^l δ_{t+l}, δ_t = r_t + γ V_{t+1} − V_t, V_T = 0."""
    v = values[:length].tolist() + [0.0]
    deltas = [rewards[t].item() + gamma * v[t + 1] - v[t] for t in range(length)]
    return [sum((gamma * lam) ** k * deltas[t + k] for k in range(length - t)) for t in range(length)]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), gamma=unit, lam=unit)
def test_gae_is_the_papers_sum_of_discounted_td_errors(seed, gamma, lam):
    rewards, values, mask, lengths = rollout(seed)
    advantages, returns = gae(rewards, values, gamma=gamma, lam=lam, mask=mask)
    for b, n in enumerate(lengths):
        want = torch.tensor(gae_by_hand(rewards[b], values[b], n, gamma, lam), dtype=torch.float64)
        torch.testing.assert_close(advantages[b, :n], want, atol=1e-9, rtol=0)
        assert (advantages[b, n:] == 0).all() and (returns[b, n:] == 0).all()
    torch.testing.assert_close(returns, (advantages + values) * mask)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), gamma=unit)
def test_gae_lambda_one_is_returns_minus_values_and_lambda_zero_is_the_td_error(seed, gamma):
    rewards, values, mask, _ = rollout(seed)
    m = mask.double()
    one, _ = gae(rewards, values, gamma=gamma, lam=1.0, mask=mask)
    torch.testing.assert_close(one, discounted_returns(rewards, gamma=gamma, mask=mask) - values * m, atol=1e-9, rtol=0)
    zero, _ = gae(rewards, values, gamma=gamma, lam=0.0, mask=mask)
    next_values = torch.cat([values[:, 1:] * m[:, 1:], torch.zeros(4, 1, dtype=torch.float64)], 1)
    torch.testing.assert_close(zero, (rewards + gamma * next_values - values) * m, atol=1e-12, rtol=0)


def test_discounted_returns():
    r = torch.tensor([[1.0, 0.0, 2.0, 5.0]], dtype=torch.float64)
    torch.testing.assert_close(discounted_returns(r, gamma=0.5), torch.tensor([[2.125, 2.25, 4.5, 5.0]], dtype=torch.float64))
    torch.testing.assert_close(discounted_returns(r, gamma=0.5, mask=torch.tensor([[1, 1, 1, 0]])),
                               torch.tensor([[1.5, 1.0, 2.0, 0.0]], dtype=torch.float64))


@settings(max_examples=60, deadline=None)
@given(log_ratio=st.floats(-1.0, 1.0), advantage=st.floats(-3, 3).filter(lambda a: abs(a) > 1e-3),
       eps=st.floats(0.05, 0.4))
def test_ppo_objective_is_flat_beyond_the_clip_range(log_ratio, advantage, eps):
    """Once ρ = π/π_old has moved past 1 + ε where A > 0 (or below 1 − ε where A < 0), the loss has
    no gradient: the update stops. Inside the range, or on the side it is moving away from, the
    gradient is −A·ρ."""
    logp = torch.tensor([log_ratio], dtype=torch.float64, requires_grad=True)
    loss = ppo_policy_loss(logp, torch.zeros(1, dtype=torch.float64), torch.tensor([advantage], dtype=torch.float64),
                           clip_eps=eps)
    grad, = torch.autograd.grad(loss, logp)
    ratio = math.exp(log_ratio)
    beyond = (advantage > 0 and ratio > 1 + eps) or (advantage < 0 and ratio < 1 - eps)
    if beyond:
        assert grad.item() == 0.0
        assert loss.item() == pytest.approx(-advantage * (1 + eps if advantage > 0 else 1 - eps))
    else:
        assert grad.item() == pytest.approx(-advantage * ratio, rel=1e-9)


def test_ppo_per_token_reductions_and_asymmetric_clip():
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.0], [1.0, 1.0, 1.0]], dtype=torch.float64))
    old = torch.zeros_like(logp)
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)  # one per sequence, shared by its tokens
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    per_token = clipped_surrogate(logp, old, adv, clip_eps=0.2, clip_eps_high=0.28)
    torch.testing.assert_close(per_token, torch.tensor([[-1.28, -0.5, -1.0], [1.0, 1.0, 1.0]], dtype=torch.float64))
    assert ppo_policy_loss(logp, old, adv, mask).item() == pytest.approx((-1.2 - 0.5 + 1.0) / 3)
    assert ppo_policy_loss(logp, old, adv, mask, reduction="sequence").item() == pytest.approx(((-1.2 - 0.5) / 2 + 1.0) / 2)
    torch.testing.assert_close(masked_reduce(per_token, mask, "none"), per_token * mask)


def test_value_loss_is_clipped_around_the_rollout_values():
    old = torch.zeros(3, dtype=torch.float64)
    returns = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    values = torch.tensor([0.5, 0.1, 0.5], dtype=torch.float64)
    # clipped V = [0.2, 0.1, 0.2]: the larger of the two squared errors is kept, halved
    want = 0.5 * torch.tensor([max(0.25, 0.64), 0.81, max(2.25, 1.44)], dtype=torch.float64)
    assert ppo_value_loss(values, old, returns, clip_eps=0.2).item() == pytest.approx(want.mean().item())
    assert ppo_value_loss(values, old, returns, clip_eps=None).item() == pytest.approx(
        0.5 * ((values - returns) ** 2).mean().item())


def test_kl_estimators_agree_with_the_exact_kl_in_expectation():
    g = torch.Generator().manual_seed(0)
    p, q = torch.randn(10, generator=g, dtype=torch.float64).softmax(-1), torch.randn(10, generator=g, dtype=torch.float64).softmax(-1)
    exact = (p * (p / q).log()).sum().item()
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=g)
    logp, ref = p.log()[tokens], q.log()[tokens]
    k1, k3 = kl_estimate(logp, ref, kind="k1"), kl_estimate(logp, ref, kind="k3")
    assert k1.mean().item() == pytest.approx(exact, abs=0.01) and k3.mean().item() == pytest.approx(exact, abs=0.01)
    assert (k3 >= 0).all() and (k1 < 0).any()  # k3 is never negative, k1 often is
    torch.testing.assert_close(kl_estimate(logp, ref, kind="k2"), 0.5 * (logp - ref) ** 2)


def test_kl_penalized_rewards_put_the_score_on_the_last_token():
    logp = torch.tensor([[-1.0, -2.0, -1.0], [-1.0, -1.0, -1.0]], dtype=torch.float64)
    ref = torch.tensor([[-1.5, -2.0, -1.0], [-1.0, -0.5, -1.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    rewards = kl_penalized_rewards(torch.tensor([2.0, 3.0], dtype=torch.float64), logp, ref, mask, kl_coef=0.1)
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, 2.0, 0.0], [0.0, 0.05, 3.0]], dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(groups=st.integers(1, 5), size=st.integers(2, 8), seed=st.integers(0, 1000))
def test_group_advantages_have_zero_mean_per_group(groups, size, seed):
    rewards = torch.randn(groups, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for advantages in (grpo_advantages(rewards), grpo_advantages(rewards, scale=False), rloo_advantages(rewards)):
        torch.testing.assert_close(advantages.sum(-1), torch.zeros(groups, dtype=torch.float64), atol=1e-9, rtol=0)
    std = grpo_advantages(rewards, eps=0.0).std(-1)
    torch.testing.assert_close(std, torch.ones(groups, dtype=torch.float64))
    # RLOO is GRPO's centring scaled by k / (k - 1): r_i − mean_{j≠i} r_j = k/(k−1) (r_i − mean)
    torch.testing.assert_close(rloo_advantages(rewards), grpo_advantages(rewards, scale=False) * size / (size - 1))


def test_rloo_baseline_leaves_the_sample_out():
    rewards = torch.tensor([[1.0, 2.0, 6.0]], dtype=torch.float64)
    torch.testing.assert_close(rloo_advantages(rewards), torch.tensor([[1 - 4.0, 2 - 3.5, 6 - 1.5]], dtype=torch.float64))
    assert (grpo_advantages(torch.ones(2, 4, dtype=torch.float64)) == 0).all()  # no spread: nothing to learn


def test_grpo_and_reinforce_losses_on_policy():
    """On-policy (π_old = π, π_ref = π) GRPO's loss is −mean A and its gradient −A/|o| per token."""
    logp = torch.log(torch.tensor([[0.5, 0.2, 0.9], [0.3, 0.6, 0.1]], dtype=torch.float64)).requires_grad_(True)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    adv = torch.tensor([1.0, -2.0], dtype=torch.float64)
    loss = grpo_loss(logp, logp.detach(), logp.detach(), adv, mask, beta=0.04)
    assert loss.item() == pytest.approx(0.5)
    grad, = torch.autograd.grad(loss, logp)
    want = torch.tensor([[-1 / 6, -1 / 6, -1 / 6], [1.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(grad, want)
    seq = logp.detach().sum(-1).requires_grad_(True)
    grad, = torch.autograd.grad(reinforce_loss(seq, adv), seq)
    torch.testing.assert_close(grad, -adv / 2)


def test_whiten():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    w = whiten(x, mask)
    real = w[mask.bool()]
    assert real.mean().item() == pytest.approx(0.0, abs=1e-12) and real.std().item() == pytest.approx(1.0, rel=1e-6)
    assert (w[~mask.bool()] == 0).all()


def test_clear_errors():
    r = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"rewards: expected \(prompts >= 1, samples per prompt >= 2\), got \(0, 4\)"):
        grpo_advantages(torch.zeros(0, 4))
    with pytest.raises(ValueError, match=r"samples per prompt >= 2\), got \(3, 1\)"):
        rloo_advantages(torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"rewards: expected a 2-D tensor, got shape \(6,\)"):
        grpo_advantages(torch.zeros(6))
    with pytest.raises(TypeError, match="mask: expected a bool or integer 0/1 tensor, got torch.float64"):
        gae(r, r, mask=torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="mask: expected each row to be 1s then 0s"):
        gae(r, r, mask=torch.tensor([[1, 0, 1], [1, 1, 1]]))
    with pytest.raises(ValueError, match=r"values: expected shape \(2, 3\) like rewards, got \(2, 2\)"):
        gae(r, r[:, :2])
    with pytest.raises(ValueError, match=r"lam: expected a number in \[0.0, 1.0\], got 1.5"):
        gae(r, r, lam=1.5)
    with pytest.raises(ValueError, match=r"advantages: expected shape \(2, 3\) or \(2,\) like logp, got \(3,\)"):
        clipped_surrogate(r, r, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="ref_logp: expected the reference model's per-token log-probs"):
        grpo_loss(r, r, None, torch.zeros(2, dtype=torch.float64), torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction: expected one of 'token', 'sequence', 'none'"):
        ppo_policy_loss(r, r, r, reduction="mean")
