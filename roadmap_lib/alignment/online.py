"""Generation-based alignment loops: sample from the policy, score, update. One step of each.

The losses live in :mod:`.policy_gradient` and :mod:`.preference` (checked against trl); this
module puts them in the loops that use them, written to be stepped through:

- :func:`rollout`: sample completions of a batch of prompts from the policy, score them with a
  reward function, and record the per-token log-probs of the policy (``logp``, the "old" policy
  of PPO's ratio) and of the frozen reference (``ref_logp``);
- :func:`ppo_step` (Schulman et al. 2017; the RLHF recipe of Ziegler et al. 2019 and InstructGPT):
  per-token rewards = reward-model score on the last token − ``kl_coef`` · KL to the reference on
  every token, a value head (:class:`ValueModel`) and GAE for the advantages, then a few epochs of
  clipped policy and value updates on the same rollout;
- :func:`group_step`: GRPO (Shao et al. 2024) or RLOO (Ahmadian et al. 2024): ``group_size``
  samples per prompt, each sequence's advantage from its group's rewards, no value model;
- :func:`online_dpo_step` (Guo et al. 2024): two samples per prompt, the reward function picks the
  chosen one, then a DPO update against the reference.

Completions have a fixed length (no end-of-sequence token), so every row has the same number of
completion tokens and the masks are all ones; prompts are a (batch, prompt_len) tensor. A reward
function takes ``(ids, prompt_len)``, ids (batch, prompt_len + T), and returns rewards (batch,).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..generation import sample
from ._checks import check_choice, check_positive, check_range, shape_of
from .logprobs import token_logprobs
from .policy_gradient import (
    gae,
    grpo_advantages,
    grpo_loss,
    kl_penalized_rewards,
    ppo_policy_loss,
    ppo_value_loss,
    rloo_advantages,
    whiten,
)
from .preference import dpo_loss

RewardFn = Callable[[torch.Tensor, int], torch.Tensor]


def _check_prompts(prompts) -> torch.Tensor:
    if not isinstance(prompts, torch.Tensor) or prompts.dtype != torch.long or prompts.ndim != 2 or prompts.shape[1] < 1:
        got = f"{shape_of(prompts)} {getattr(prompts, 'dtype', '')}".strip()
        raise ValueError(f"prompts: expected a (batch, prompt_len >= 1) int64 tensor, got {got}")
    return prompts


def completion_logprobs(model: nn.Module, ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """log π(y_t | x, y_<t) of the completion tokens ``ids[:, prompt_len:]`` -> (batch, T)."""
    if not 1 <= prompt_len < ids.shape[1]:
        raise ValueError(f"prompt_len: expected 1 <= prompt_len < {ids.shape[1]} (ids' length), got {prompt_len}")
    return token_logprobs(model(ids), ids)[:, prompt_len - 1:]


class ValueModel(nn.Module):
    """PPO's critic: a copy of a causal LM of ours with its vocabulary head replaced by one linear
    unit per position. ``forward(ids)`` -> (batch, seq): V of the state *after* reading token t,
    i.e. before choosing token t + 1. Initialised at 0, so the first advantages are the returns."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        head = getattr(lm, "lm_head", None)
        if not isinstance(head, nn.Linear):
            raise TypeError(f"lm: expected a causal LM with an nn.Linear `lm_head`, got {type(lm).__name__}")
        self.body = copy.deepcopy(lm)
        self.body.lm_head = nn.Identity()
        self.head = nn.Linear(head.in_features, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(ids)).squeeze(-1)


@dataclass
class Rollout:
    """A batch of sampled completions and what the updates need from the moment they were drawn.

    ids (batch, prompt_len + T); logp, ref_logp (batch, T): per-token log-probs of the completion
    under the sampling policy and the reference; scores (batch,): the reward function's."""

    ids: torch.Tensor
    prompt_len: int
    logp: torch.Tensor
    ref_logp: torch.Tensor
    scores: torch.Tensor

    @property
    def completions(self) -> torch.Tensor:
        return self.ids[:, self.prompt_len:]

    def kl(self) -> torch.Tensor:
        """Per-sequence estimate of KL(π ‖ π_ref) in nats: Σ_t (log π − log π_ref) over the
        sampled tokens (k1; its mean over samples is unbiased) -> (batch,)."""
        return (self.logp - self.ref_logp).sum(-1)


@torch.no_grad()
def rollout(policy: nn.Module, ref: nn.Module, reward_fn: RewardFn, prompts: torch.Tensor, max_new_tokens: int, *,
            generator: torch.Generator | None = None, temperature: float = 1.0) -> Rollout:
    """Sample one completion of ``max_new_tokens`` tokens per prompt row from ``policy`` (with a KV
    cache), score it, and record both models' per-token log-probs."""
    _check_prompts(prompts)
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: expected an int >= 1, got {max_new_tokens!r}")
    check_positive("temperature", temperature)
    was_training = policy.training
    policy.eval()
    ids = sample(policy, prompts, max_new_tokens, temperature=temperature, generator=generator, use_cache=True)
    p = prompts.shape[1]
    logp = completion_logprobs(policy, ids, p)
    ref_logp = completion_logprobs(ref, ids, p)
    policy.train(was_training)
    scores = reward_fn(ids, p)
    if not isinstance(scores, torch.Tensor) or scores.shape != (ids.shape[0],):
        raise ValueError(f"reward_fn: expected rewards of shape ({ids.shape[0]},), got {shape_of(scores)}")
    return Rollout(ids, p, logp, ref_logp, scores.float())


def _minibatches(n: int, count: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    if not isinstance(count, int) or not 1 <= count <= n:
        raise ValueError(f"minibatches: expected an int in [1, {n}] (the rollout's rows), got {count!r}")
    return list(torch.randperm(n, generator=generator).chunk(count))


@dataclass(frozen=True)
class PPOConfig:
    """PPO's knobs, with the defaults of the RLHF implementations (Huang et al. 2024's list)."""

    kl_coef: float = 0.05        # β of the per-token KL penalty in the reward
    clip_eps: float = 0.2        # policy ratio trust region
    value_clip_eps: float = 0.2  # value trust region
    vf_coef: float = 0.1         # weight of the value loss in the joint loss
    gamma: float = 1.0
    lam: float = 0.95
    epochs: int = 2              # passes over each rollout
    minibatches: int = 2         # minibatches per pass
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        check_range("kl_coef", self.kl_coef, 0.0, float("inf"))
        check_range("clip_eps", self.clip_eps, 0.0, 1.0)
        check_positive("value_clip_eps", self.value_clip_eps)
        check_positive("vf_coef", self.vf_coef)
        check_range("gamma", self.gamma, 0.0, 1.0, high_open=False)
        check_range("lam", self.lam, 0.0, 1.0, high_open=False)
        for name in ("epochs", "minibatches"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {getattr(self, name)!r}")
        check_positive("max_grad_norm", self.max_grad_norm)


def ppo_update(policy: nn.Module, value_model: ValueModel, optimizer: torch.optim.Optimizer, batch: Rollout,
               config: PPOConfig = PPOConfig(), *, generator: torch.Generator | None = None) -> dict[str, float]:
    """PPO's learning phase on one rollout: KL-penalised per-token rewards, GAE with the value
    model's estimates (whitened advantages), then ``epochs`` × ``minibatches`` clipped updates of
    policy and value model together (``optimizer`` holds both models' parameters)."""
    p, mask = batch.prompt_len, torch.ones_like(batch.logp)
    with torch.no_grad():
        old_values = value_model(batch.ids)[:, p - 1:-1]  # V of the state before each completion token
        rewards = kl_penalized_rewards(batch.scores, batch.logp, batch.ref_logp, mask.bool(), kl_coef=config.kl_coef)
        advantages, returns = gae(rewards, old_values, gamma=config.gamma, lam=config.lam)
        advantages = whiten(advantages)
    policy.train()
    value_model.train()
    params = [q for group in optimizer.param_groups for q in group["params"]]
    stats = {"policy_loss": 0.0, "value_loss": 0.0, "clip_fraction": 0.0}
    updates = 0
    for _ in range(config.epochs):
        for idx in _minibatches(batch.ids.shape[0], config.minibatches, generator):
            ids = batch.ids[idx]
            logp = completion_logprobs(policy, ids, p)
            values = value_model(ids)[:, p - 1:-1]
            pg = ppo_policy_loss(logp, batch.logp[idx], advantages[idx], clip_eps=config.clip_eps)
            vf = ppo_value_loss(values, old_values[idx], returns[idx], clip_eps=config.value_clip_eps)
            optimizer.zero_grad()
            (pg + config.vf_coef * vf).backward()
            nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                ratio = torch.exp(logp - batch.logp[idx])
                stats["clip_fraction"] += ((ratio - 1).abs() > config.clip_eps).float().mean().item()
            stats["policy_loss"] += pg.item()
            stats["value_loss"] += vf.item()
            updates += 1
    return {k: v / updates for k, v in stats.items()}


def _stats(batch: Rollout, **extra: float) -> dict[str, float]:
    return {"score": batch.scores.mean().item(), "kl": batch.kl().mean().item(), **extra}


def ppo_step(policy: nn.Module, value_model: ValueModel, ref: nn.Module, reward_fn: RewardFn, prompts: torch.Tensor,
             optimizer: torch.optim.Optimizer, *, max_new_tokens: int, config: PPOConfig = PPOConfig(),
             generator: torch.Generator | None = None) -> dict[str, float]:
    """One PPO iteration: :func:`rollout`, then :func:`ppo_update`. Returns the rollout's mean
    score and KL (nats per sequence) and the update's mean losses."""
    batch = rollout(policy, ref, reward_fn, prompts, max_new_tokens, generator=generator)
    return _stats(batch, **ppo_update(policy, value_model, optimizer, batch, config, generator=generator))


def group_step(policy: nn.Module, ref: nn.Module, reward_fn: RewardFn, prompts: torch.Tensor,
               optimizer: torch.optim.Optimizer, *, max_new_tokens: int, group_size: int = 4,
               estimator: str = "grpo", beta: float = 0.04, clip_eps: float = 0.2, epochs: int = 1,
               max_grad_norm: float = 1.0, generator: torch.Generator | None = None) -> dict[str, float]:
    """One GRPO or RLOO iteration: each prompt row is repeated ``group_size`` times, the samples of
    a prompt form a group, and each sequence's advantage compares its reward with its group's
    (``"grpo"``: standardised; ``"rloo"``: minus the mean of the others). GRPO's loss is the
    clipped surrogate plus β·k3 to the reference per token; RLOO's is the same surrogate with β = 0
    (the KL then only enters through ``beta`` in the reward, as in trl: ``score − β·KL``)."""
    check_choice("estimator", estimator, ("grpo", "rloo"))
    if not isinstance(group_size, int) or group_size < 2:
        raise ValueError(f"group_size: expected an int >= 2 (a group needs a baseline), got {group_size!r}")
    _check_prompts(prompts)
    batch = rollout(policy, ref, reward_fn, prompts.repeat_interleave(group_size, 0), max_new_tokens,
                    generator=generator)
    if estimator == "grpo":
        advantages = grpo_advantages(batch.scores.view(-1, group_size)).flatten()
        loss_beta = beta
    else:
        penalised = batch.scores - beta * batch.kl()
        advantages = rloo_advantages(penalised.view(-1, group_size)).flatten()
        loss_beta = 0.0
    policy.train()
    params = [q for group in optimizer.param_groups for q in group["params"]]
    mask = torch.ones_like(batch.logp, dtype=torch.bool)
    total = 0.0
    for _ in range(epochs):
        logp = completion_logprobs(policy, batch.ids, batch.prompt_len)
        loss = grpo_loss(logp, batch.logp, batch.ref_logp, advantages, mask, clip_eps=clip_eps, beta=loss_beta)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        total += loss.item()
    return _stats(batch, loss=total / epochs)


def online_dpo_step(policy: nn.Module, ref: nn.Module, reward_fn: RewardFn, prompts: torch.Tensor,
                    optimizer: torch.optim.Optimizer, *, max_new_tokens: int, beta: float = 0.1,
                    loss_type: str = "sigmoid", max_grad_norm: float = 1.0,
                    generator: torch.Generator | None = None) -> dict[str, float]:
    """Online (iterative) DPO: two fresh samples per prompt, the one the reward function scores
    higher is "chosen", ties are dropped, then one DPO update against the reference on the pairs.
    ``pairs`` in the result counts the untied pairs used (0: no update)."""
    _check_prompts(prompts)
    batch = rollout(policy, ref, reward_fn, prompts.repeat_interleave(2, 0), max_new_tokens, generator=generator)
    scores = batch.scores.view(-1, 2)
    keep = scores[:, 0] != scores[:, 1]
    first_wins = scores[:, 0] > scores[:, 1]
    rows = torch.arange(scores.shape[0]) * 2
    chosen = torch.where(first_wins, rows, rows + 1)[keep]
    rejected = torch.where(first_wins, rows + 1, rows)[keep]
    stats = _stats(batch, pairs=float(keep.sum().item()), loss=float("nan"))
    if chosen.numel() == 0:
        return stats
    policy.train()
    ids = batch.ids[torch.cat([chosen, rejected])]
    logps = completion_logprobs(policy, ids, batch.prompt_len).sum(-1)
    ref_logps = batch.ref_logp.sum(-1)
    loss = dpo_loss(*logps.chunk(2), ref_logps[chosen], ref_logps[rejected], beta=beta, loss_type=loss_type)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_([q for g in optimizer.param_groups for q in g["params"]], max_grad_norm)
    optimizer.step()
    stats["loss"] = loss.item()
    return stats


__all__ = ["PPOConfig", "RewardFn", "Rollout", "ValueModel", "completion_logprobs", "group_step", "online_dpo_step",
           "ppo_step", "ppo_update", "rollout"]
