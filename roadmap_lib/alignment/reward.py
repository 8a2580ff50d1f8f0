"""Reward models: a scalar score for a (prompt, completion), learned from human preferences.

The Bradley–Terry model (1952) says a person prefers ``y_w`` to ``y_l`` with probability
``σ(r(x, y_w) − r(x, y_l))``; its negative log-likelihood is the reward model's loss
(Christiano et al. 2017; Stiennon et al. 2020; Ouyang et al. 2022):

    L = −log σ(r_chosen − r_rejected − m)            m: an optional margin (Llama 2's rating gap)

- :func:`bradley_terry_loss`, :func:`reward_accuracy`;
- :class:`RewardModel`: a causal LM of ours with its vocabulary head replaced by one linear unit,
  read at the last real token (:func:`last_token_pool`), as transformers'
  ``...ForSequenceClassification(num_labels=1)`` does;
- :func:`aggregate_step_rewards`: one score from a process reward model's per-step scores
  (Lightman et al. 2023: the product or the minimum of the step correctness probabilities).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_choice, check_float, check_like, check_mask, reduce


def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, *,
                       margin: torch.Tensor | float | None = None, reduction: str = "mean") -> torch.Tensor:
    """``−log σ(r_chosen − r_rejected − margin)``; rewards (batch,), margin a number or (batch,)."""
    check_float("chosen_rewards", chosen_rewards, ndim=1)
    check_like("chosen_rewards", chosen_rewards, rejected_rewards=rejected_rewards)
    diff = chosen_rewards - rejected_rewards
    if margin is not None:
        if isinstance(margin, torch.Tensor):
            check_like("chosen_rewards", chosen_rewards, margin=margin)
        diff = diff - margin
    return reduce(-F.logsigmoid(diff), reduction)


def reward_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """Fraction of pairs where the chosen completion scores strictly higher (a 0-dim tensor)."""
    check_float("chosen_rewards", chosen_rewards, ndim=1)
    check_like("chosen_rewards", chosen_rewards, rejected_rewards=rejected_rewards)
    return (chosen_rewards > rejected_rewards).to(chosen_rewards.dtype).mean()


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of the last 1 in each row of a (batch, seq) mask -> (batch,) int64; works for left
    and right padding alike."""
    if isinstance(attention_mask, torch.Tensor) and attention_mask.ndim != 2:
        raise ValueError(f"attention_mask: expected shape (batch, seq), got {tuple(attention_mask.shape)}")
    mask = check_mask("attention_mask", attention_mask, getattr(attention_mask, "shape", ()))
    if not mask.any(-1).all():
        rows = (~mask.any(-1)).nonzero().flatten().tolist()
        raise ValueError(f"attention_mask: rows {rows} have no token")
    positions = torch.arange(mask.shape[1], device=mask.device)
    return torch.where(mask, positions, -1).amax(-1)


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """hidden (batch, seq, d) -> (batch, d) at each row's last real token (the last position if no
    mask): in a causal model it is the only position that has seen the whole sequence."""
    check_float("hidden", hidden, ndim=3)
    if attention_mask is None:
        return hidden[:, -1]
    check_mask("attention_mask", attention_mask, hidden.shape[:2])
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token_index(attention_mask)]


class RewardModel(nn.Module):
    """A scalar reward on top of a copy of a causal LM of ours (anything with an ``lm_head``
    ``nn.Linear`` whose input is the final hidden state, e.g. :class:`~roadmap_lib.models.GPT`).

    The copy's ``lm_head`` becomes the identity, so the LM returns hidden states (batch, seq, d);
    ``score`` (d -> 1, no bias, N(0, 0.02) like transformers' initialisation) reads them at the
    last real token. ``forward(ids, attention_mask=None)`` -> rewards (batch,). Right-pad ``ids``
    (our models' positions start at the first column).
    """

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        head = getattr(lm, "lm_head", None)
        if not isinstance(head, nn.Linear):
            raise TypeError(f"lm: expected a causal LM with an nn.Linear `lm_head`, got {type(lm).__name__} "
                            f"with lm_head={type(head).__name__}")
        self.body = copy.deepcopy(lm)
        self.body.lm_head = nn.Identity()
        self.score = nn.Linear(head.in_features, 1, bias=False)
        nn.init.normal_(self.score.weight, std=0.02)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(last_token_pool(self.body(ids), attention_mask)).squeeze(-1)


def aggregate_step_rewards(step_rewards: torch.Tensor, step_mask: torch.Tensor | None = None, *,
                           how: str = "min") -> torch.Tensor:
    """One outcome score from per-step scores (batch, steps) of a process reward model -> (batch,).

    ``how``: ``"min"`` (a solution is as good as its worst step), ``"prod"`` (the probability that
    every step is right, when scores are probabilities), ``"last"`` (the score of the final step),
    ``"mean"``. ``step_mask`` (batch, steps) marks real steps (rows may have different numbers).
    """
    check_float("step_rewards", step_rewards, ndim=2)
    check_choice("how", how, ("min", "prod", "last", "mean"))
    if step_mask is None:
        mask = torch.ones_like(step_rewards, dtype=torch.bool)
    else:
        mask = check_mask("step_mask", step_mask, step_rewards.shape)
    counts = mask.sum(-1)
    if step_rewards.shape[1] == 0 or (counts == 0).any():
        rows = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"step_mask: every row needs at least one step; rows {rows} have none")
    if how == "min":
        return step_rewards.masked_fill(~mask, float("inf")).amin(-1)
    if how == "prod":
        return step_rewards.masked_fill(~mask, 1.0).prod(-1)
    if how == "mean":
        return (step_rewards * mask).sum(-1) / counts
    return step_rewards.gather(-1, last_token_index(mask)[:, None]).squeeze(-1)


__all__ = ["RewardModel", "aggregate_step_rewards", "bradley_terry_loss", "last_token_index", "last_token_pool",
           "reward_accuracy"]
