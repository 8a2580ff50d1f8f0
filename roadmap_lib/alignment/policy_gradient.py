"""Policy-gradient RL for language models: a completion is an episode, each token an action.

- **Advantages.** GAE (Schulman et al. 2016) from per-token rewards and a value model:
  ``δ_t = r_t + γ V(t+1) − V(t)``, ``A_t = δ_t + γλ A_{t+1}``; λ = 1 gives the discounted return minus
  V, λ = 0 the one-step TD error. Without a value model, compare samples of the same prompt: GRPO
  (Shao et al. 2024) uses ``(r − mean) / std`` over the group, RLOO (Ahmadian et al. 2024) subtracts
  the mean of the *other* samples (an unbiased baseline).
- **Objectives.** PPO's clipped surrogate (Schulman et al. 2017): with ``ρ = π / π_old``, maximise
  ``min(ρA, clip(ρ, 1−ε, 1+ε) A)``, which stops pushing once ρ leaves the trust region; a clipped
  value loss; a KL penalty to the reference model per token (in the reward, as in InstructGPT, or in
  the loss with the k3 estimator, as in GRPO); plain REINFORCE for RLOO.

Shapes: per-token tensors are (batch, T) with ``mask`` (batch, T) 1 on the completion's tokens
(right-padded); per-sequence tensors are (batch,); group rewards are (prompts, samples per prompt).
Losses are minimised (the negated objectives).
"""

from __future__ import annotations

import torch

from ._checks import check_choice, check_float, check_like, check_mask, check_positive, check_range

REDUCTIONS = ("token", "sequence", "none")


def _mask_of(mask, like: torch.Tensor, *, prefix: bool = False) -> torch.Tensor:
    """The mask as floats of ``like``'s dtype (all ones if None); ``prefix``: 1s then 0s per row."""
    if mask is None:
        return torch.ones_like(like)
    m = check_mask("mask", mask, like.shape)
    if prefix and (m[..., 1:] & ~m[..., :-1]).any():
        raise ValueError("mask: expected each row to be 1s then 0s (right padding); got a 0 before a 1")
    return m.to(like.dtype)


def masked_reduce(x: torch.Tensor, mask: torch.Tensor | None = None, reduction: str = "token") -> torch.Tensor:
    """Reduce per-token values over the real tokens: ``"token"`` the mean over all of them (each token
    weighs the same), ``"sequence"`` the mean of each row's mean (each sequence weighs the same, as
    in GRPO's paper), ``"none"`` the values, 0 on padding."""
    check_choice("reduction", reduction, REDUCTIONS)
    m = _mask_of(mask, x)
    if reduction == "none":
        return x * m
    if reduction == "token" or x.ndim < 2:
        return (x * m).sum() / m.sum().clamp(min=1)
    return ((x * m).sum(-1) / m.sum(-1).clamp(min=1)).mean()


def discounted_returns(rewards: torch.Tensor, *, gamma: float = 1.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``G_t = r_t + γ G_{t+1}`` along the last dimension (batch, T) -> (batch, T), 0 on padding."""
    check_float("rewards", rewards, ndim=2)
    check_range("gamma", gamma, 0.0, 1.0, high_open=False)
    r = rewards * _mask_of(mask, rewards, prefix=True)
    out, running = torch.zeros_like(r), torch.zeros_like(r[:, 0])
    for t in reversed(range(r.shape[1])):
        running = r[:, t] + gamma * running
        out[:, t] = running
    return out


def gae(rewards: torch.Tensor, values: torch.Tensor, *, gamma: float = 1.0, lam: float = 0.95,
        mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation -> ``(advantages, returns)``, each (batch, T), 0 on padding.

    ``rewards``, ``values`` (batch, T): the reward after token t and V of the state before it. The
    episode ends after each row's last real token (V = 0 beyond it); ``returns = advantages + values``
    are the value model's regression targets.
    """
    check_float("rewards", rewards, ndim=2)
    check_like("rewards", rewards, values=values)
    check_range("gamma", gamma, 0.0, 1.0, high_open=False)
    check_range("lam", lam, 0.0, 1.0, high_open=False)
    m = _mask_of(mask, rewards, prefix=True)
    r, v = rewards * m, values * m
    advantages, running = torch.zeros_like(r), torch.zeros_like(r[:, 0])
    for t in reversed(range(r.shape[1])):
        next_value = v[:, t + 1] if t + 1 < r.shape[1] else torch.zeros_like(running)
        delta = r[:, t] + gamma * next_value - v[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages * m, (advantages + v) * m


def whiten(x: torch.Tensor, mask: torch.Tensor | None = None, *, eps: float = 1e-8) -> torch.Tensor:
    """``(x − mean) / std`` over the real entries (std with Bessel's correction), 0 on padding: the
    advantage normalisation most PPO implementations apply per batch."""
    check_float("x", x)
    m = _mask_of(mask, x)
    n = m.sum()
    if n < 2:
        raise ValueError(f"mask: expected at least 2 real entries to estimate a std, got {int(n.item())}")
    mean = (x * m).sum() / n
    var = ((x - mean) ** 2 * m).sum() / (n - 1)
    return (x - mean) * torch.rsqrt(var + eps) * m


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, *, kind: str = "k3") -> torch.Tensor:
    """Per-token estimates of KL(π ‖ π_ref) from tokens sampled from π (Schulman 2020), with
    ``u = log π_ref − log π``: ``k1 = −u`` (unbiased, can be < 0), ``k2 = u²/2``,
    ``k3 = exp(u) − u − 1`` (unbiased and ≥ 0; GRPO's choice)."""
    check_float("logp", logp)
    check_like("logp", logp, ref_logp=ref_logp)
    check_choice("kind", kind, ("k1", "k2", "k3"))
    u = ref_logp - logp
    if kind == "k1":
        return -u
    return 0.5 * u**2 if kind == "k2" else torch.exp(u) - u - 1


def kl_penalized_rewards(scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, *,
                         kl_coef: float = 0.05, kind: str = "k1") -> torch.Tensor:
    """InstructGPT's per-token rewards (batch, T): ``−kl_coef · KL_t`` on every token, plus the reward
    model's ``scores`` (batch,) on each row's last real token."""
    check_float("scores", scores, ndim=1)
    check_float("logp", logp, ndim=2)
    if scores.shape[0] != logp.shape[0]:
        raise ValueError(f"scores: expected shape ({logp.shape[0]},) like logp's batch, got {tuple(scores.shape)}")
    check_range("kl_coef", kl_coef, 0.0, float("inf"))
    m = _mask_of(mask, logp, prefix=True)
    lengths = m.sum(-1).long()
    if (lengths == 0).any():
        raise ValueError(f"mask: rows {(lengths == 0).nonzero().flatten().tolist()} have no token")
    rewards = -kl_coef * kl_estimate(logp, ref_logp, kind=kind) * m
    last = (lengths - 1)[:, None]
    return rewards.scatter_add(1, last, scores[:, None].to(rewards.dtype))


def _broadcast_advantages(advantages: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    check_float("advantages", advantages)
    if advantages.shape == logp.shape:
        return advantages
    if advantages.ndim == 1 and logp.ndim == 2 and advantages.shape[0] == logp.shape[0]:
        return advantages[:, None]  # one advantage per sequence, shared by its tokens
    raise ValueError(f"advantages: expected shape {tuple(logp.shape)} or ({logp.shape[0]},) like logp, "
                     f"got {tuple(advantages.shape)}")


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, *,
                      clip_eps: float = 0.2, clip_eps_high: float | None = None) -> torch.Tensor:
    """PPO's per-token loss ``−min(ρA, clip(ρ, 1 − ε, 1 + ε_high) A)``, ρ = exp(logp − old_logp),
    same shape as ``logp``. Beyond the clip range in the direction A favours, its gradient is 0."""
    check_float("logp", logp)
    check_like("logp", logp, old_logp=old_logp)
    high = check_positive("clip_eps_high", clip_eps_high) if clip_eps_high is not None else None
    low = check_range("clip_eps", clip_eps, 0.0, 1.0)
    a = _broadcast_advantages(advantages, logp)
    ratio = torch.exp(logp - old_logp)
    clipped = ratio.clamp(1 - low, 1 + (low if high is None else high))
    return -torch.min(ratio * a, clipped * a)


def ppo_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                    mask: torch.Tensor | None = None, *, clip_eps: float = 0.2, clip_eps_high: float | None = None,
                    reduction: str = "token") -> torch.Tensor:
    """:func:`clipped_surrogate` reduced over the real tokens (:func:`masked_reduce`). Per-sequence
    (batch,) log-probs give the sequence-level ratio RLOO's trainer in trl clips."""
    per_token = clipped_surrogate(logp, old_logp, advantages, clip_eps=clip_eps, clip_eps_high=clip_eps_high)
    return masked_reduce(per_token, mask, reduction)


def ppo_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                   mask: torch.Tensor | None = None, *, clip_eps: float | None = 0.2,
                   reduction: str = "token") -> torch.Tensor:
    """``½ max((V − R)², (V_clipped − R)²)`` with ``V_clipped = old + clip(V − old, ±ε)``: the value
    model may not move further than ε from the values the rollout used (``clip_eps=None``: plain MSE/2)."""
    check_float("values", values)
    check_like("values", values, old_values=old_values, returns=returns)
    loss = (values - returns) ** 2
    if clip_eps is not None:
        eps = check_positive("clip_eps", clip_eps)
        clipped = old_values + (values - old_values).clamp(-eps, eps)
        loss = torch.max(loss, (clipped - returns) ** 2)
    return masked_reduce(0.5 * loss, mask, reduction)


def _check_groups(rewards: torch.Tensor, min_size: int) -> None:
    check_float("rewards", rewards, ndim=2)
    if rewards.shape[0] == 0 or rewards.shape[1] < min_size:
        raise ValueError(f"rewards: expected (prompts >= 1, samples per prompt >= {min_size}), got "
                         f"{tuple(rewards.shape)}; reshape flat rewards with .view(-1, samples_per_prompt)")


def grpo_advantages(rewards: torch.Tensor, *, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """GRPO's outcome advantages: ``(r − mean_group) / (std_group + eps)`` (std with Bessel's
    correction, as trl's), rewards (prompts, samples) -> same shape; ``scale=False`` only centres
    (Dr. GRPO). A group whose samples all score the same gets advantage 0: nothing to learn."""
    _check_groups(rewards, 2)
    centred = rewards - rewards.mean(-1, keepdim=True)
    return centred / (rewards.std(-1, keepdim=True) + eps) if scale else centred


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None, advantages: torch.Tensor,
              mask: torch.Tensor, *, clip_eps: float = 0.2, clip_eps_high: float | None = None, beta: float = 0.04,
              reduction: str = "sequence") -> torch.Tensor:
    """GRPO: the clipped surrogate with each sequence's advantage (batch,) on all its tokens, plus
    ``β · k3`` to the reference per token, averaged per sequence then over the batch (the paper's
    ``1/G Σ 1/|o_i| Σ_t``; ``reduction="token"`` averages over all tokens instead, as DAPO does)."""
    per_token = clipped_surrogate(logp, old_logp, advantages, clip_eps=clip_eps, clip_eps_high=clip_eps_high)
    check_range("beta", beta, 0.0, float("inf"))
    if beta > 0:
        if ref_logp is None:
            raise ValueError("ref_logp: expected the reference model's per-token log-probs when beta > 0, got None")
        per_token = per_token + beta * kl_estimate(logp, ref_logp, kind="k3")
    return masked_reduce(per_token, mask, reduction)


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """RLOO: ``r_i − mean_{j≠i} r_j`` within each group (prompts, k >= 2) -> same shape. The baseline
    leaves sample i out, so it does not depend on sample i's action: the gradient stays unbiased."""
    _check_groups(rewards, 2)
    k = rewards.shape[1]
    return rewards - (rewards.sum(-1, keepdim=True) - rewards) / (k - 1)


def reinforce_loss(logps: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """REINFORCE with a baseline: ``−mean(A · log π(y|x))`` over sequences (batch,); the advantages
    are constants (detached)."""
    check_float("logps", logps, ndim=1)
    check_like("logps", logps, advantages=advantages)
    return -(advantages.detach() * logps).mean()


__all__ = ["REDUCTIONS", "clipped_surrogate", "discounted_returns", "gae", "grpo_advantages", "grpo_loss",
           "kl_estimate", "kl_penalized_rewards", "masked_reduce", "ppo_policy_loss", "ppo_value_loss",
           "reinforce_loss", "rloo_advantages", "whiten"]
