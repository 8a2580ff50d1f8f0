"""Preference optimisation: learn from pairs (prompt, chosen, rejected) without a reward model.

DPO (Rafailov et al. 2023) notes that the KL-regularised RLHF objective is maximised by
``π(y|x) ∝ π_ref(y|x) exp(r(x, y) / β)``, so a policy defines its own *implicit reward*

    r(x, y) = β (log π(y|x) − log π_ref(y|x))                        (up to a term in x alone)

and the Bradley–Terry loss on it trains the policy directly. With the log-ratio difference
``h = (log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))`` of a pair:

    sigmoid (DPO)   −log σ(βh)            with label smoothing ε: −(1−ε) log σ(βh) − ε log σ(−βh)
                                          (conservative DPO, Mitchell 2023)
    robust          (−(1−ε) log σ(βh) + ε log σ(−βh)) / (1 − 2ε)     (Chowdhury et al. 2024)
    ipo             (h − 1/(2β))²         (Azar et al. 2023: a target margin, no saturation)
    hinge           max(0, 1 − βh)        (SLiC, Zhao et al. 2023)

Without a reference model: ORPO (Hong et al. 2024: NLL + an odds-ratio term on the mean log-probs),
SimPO (Meng et al. 2024: −log σ(β(mean log π(y_w) − mean log π(y_l)) − γ)), CPO (Xu et al. 2024:
DPO with π_ref ≡ 1, plus NLL). Unpaired: KTO (Ethayarajh et al. 2024).

Inputs are sequence log-probs (batch,) from :func:`~roadmap_lib.alignment.logprobs.sequence_logprobs`
(sums; means where the docstring says so); losses return the mean over the batch unless
``reduction="sum"`` or ``"none"``. :func:`dpo_loss_fn` adapts DPO to
:func:`roadmap_lib.training.train`'s ``loss_fn(model, inputs, targets)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import (
    check_choice,
    check_float,
    check_like,
    check_mask,
    check_positive,
    check_range,
    reduce,
)
from .logprobs import sequence_logprobs

DPO_LOSS_TYPES = ("sigmoid", "robust", "ipo", "hinge")


def _check_pairs(**logps: torch.Tensor) -> None:
    (first, x), *_ = logps.items()
    check_float(first, x, ndim=1)
    check_like(first, x, **logps)


def implicit_rewards(policy_logps: torch.Tensor, ref_logps: torch.Tensor, *, beta: float) -> torch.Tensor:
    """DPO's reward ``β (log π − log π_ref)`` -> (batch,)."""
    check_positive("beta", beta)
    _check_pairs(policy_logps=policy_logps, ref_logps=ref_logps)
    return beta * (policy_logps - ref_logps)


def preference_metrics(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                       ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, *,
                       beta: float) -> dict[str, float]:
    """Batch means of the implicit rewards: ``chosen``, ``rejected``, ``margin`` (chosen − rejected)
    and ``accuracy`` (fraction of pairs with chosen > rejected), the numbers trl logs as
    ``rewards/...``."""
    with torch.no_grad():
        chosen = implicit_rewards(policy_chosen_logps, ref_chosen_logps, beta=beta)
        rejected = implicit_rewards(policy_rejected_logps, ref_rejected_logps, beta=beta)
    return {"chosen": chosen.mean().item(), "rejected": rejected.mean().item(),
            "margin": (chosen - rejected).mean().item(), "accuracy": (chosen > rejected).double().mean().item()}


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, *, beta: float = 0.1,
             loss_type: str = "sigmoid", label_smoothing: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    """DPO and its relatives (module docstring) from the four (batch,) sequence log-probs.

    ``label_smoothing`` ε in [0, 0.5) is the assumed fraction of flipped labels (``sigmoid`` and
    ``robust``). IPO's paper scores whole sequences; trl divides each log-ratio by the completion's
    length first: pass mean log-probs (``average=True``) to get that form.
    """
    check_positive("beta", beta)
    check_choice("loss_type", loss_type, DPO_LOSS_TYPES)
    eps = check_range("label_smoothing", label_smoothing, 0.0, 0.5)
    _check_pairs(policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
                 ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    h = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    if loss_type == "sigmoid":
        losses = -(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)
    elif loss_type == "robust":  # unbiased under label noise ε: its expectation is the clean loss
        losses = (-(1 - eps) * F.logsigmoid(beta * h) + eps * F.logsigmoid(-beta * h)) / (1 - 2 * eps)
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        losses = torch.relu(1 - beta * h)
    return reduce(losses, reduction)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 − exp(x))`` for x ≤ 0, accurate at both ends (Mächler 2012: switch at −log 2)."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_odds_ratio_loss(chosen_mean_logps: torch.Tensor, rejected_mean_logps: torch.Tensor, *,
                         reduction: str = "mean") -> torch.Tensor:
    """ORPO's ``−log σ(log odds(y_w) − log odds(y_l))`` with ``odds(y) = P / (1 − P)`` and
    ``P = exp(mean log-prob)`` (the length-normalised likelihood). Inputs (batch,), all < 0."""
    _check_pairs(chosen_mean_logps=chosen_mean_logps, rejected_mean_logps=rejected_mean_logps)
    for name, x in (("chosen_mean_logps", chosen_mean_logps), ("rejected_mean_logps", rejected_mean_logps)):
        if (x >= 0).any():
            raise ValueError(f"{name}: expected log-probabilities < 0 (odds of P = 1 are infinite), "
                             f"got max {x.max().item()}")
    log_odds = (chosen_mean_logps - rejected_mean_logps) - (log1mexp(chosen_mean_logps) - log1mexp(rejected_mean_logps))
    return reduce(-F.logsigmoid(log_odds), reduction)


def orpo_loss(chosen_mean_logps: torch.Tensor, rejected_mean_logps: torch.Tensor, chosen_nll: torch.Tensor, *,
              lam: float = 0.1) -> torch.Tensor:
    """ORPO: ``chosen_nll + λ · mean odds-ratio loss``; ``chosen_nll`` is the (0-dim) SFT loss on the
    chosen completions. No reference model."""
    check_positive("lam", lam)
    check_float("chosen_nll", chosen_nll, ndim=0)
    return chosen_nll + lam * orpo_odds_ratio_loss(chosen_mean_logps, rejected_mean_logps)


def simpo_loss(chosen_mean_logps: torch.Tensor, rejected_mean_logps: torch.Tensor, *, beta: float = 2.0,
               gamma: float = 0.5, label_smoothing: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    """SimPO: ``−log σ(β (mean log π(y_w) − mean log π(y_l)) − γ)``: the average log-prob is the
    reward (no reference model), and γ is a target margin. Inputs (batch,) mean log-probs."""
    check_positive("beta", beta)
    eps = check_range("label_smoothing", label_smoothing, 0.0, 0.5)
    _check_pairs(chosen_mean_logps=chosen_mean_logps, rejected_mean_logps=rejected_mean_logps)
    z = beta * (chosen_mean_logps - rejected_mean_logps) - gamma
    return reduce(-(1 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z), reduction)


def cpo_loss(chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, chosen_nll: torch.Tensor, *,
             beta: float = 0.1, alpha: float = 1.0) -> torch.Tensor:
    """CPO: ``mean −log σ(β (log π(y_w) − log π(y_l))) + α · chosen_nll`` (DPO with a uniform
    reference, kept near the data by the NLL term)."""
    check_float("chosen_nll", chosen_nll, ndim=0)
    zeros = torch.zeros_like(chosen_logps)
    return dpo_loss(chosen_logps, rejected_logps, zeros, zeros, beta=beta) + alpha * chosen_nll


def kto_reference_point(policy_logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """KTO's z0: an estimate of KL(π ‖ π_ref), the batch mean of ``log π − log π_ref`` over
    *mismatched* pairs (prompt i with completion j ≠ i), clamped at 0 and detached (0-dim)."""
    _check_pairs(policy_logps=policy_logps, ref_logps=ref_logps)
    return (policy_logps - ref_logps).mean().clamp(min=0).detach()


def kto_loss(policy_logps: torch.Tensor, ref_logps: torch.Tensor, desirable: torch.Tensor, *,
             reference_point: torch.Tensor | float, beta: float = 0.1, desirable_weight: float = 1.0,
             undesirable_weight: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """KTO on unpaired examples: ``desirable`` (batch,) bool marks good completions.

    With r = log π − log π_ref and z0 = ``reference_point`` (:func:`kto_reference_point`), the value
    is σ(β(r − z0)) for a desirable and σ(β(z0 − r)) for an undesirable completion (a prospect-theory
    value around the reference point); the loss is ``λ_y (1 − value)``, λ the class weights.
    """
    check_positive("beta", beta)
    check_positive("desirable_weight", desirable_weight)
    check_positive("undesirable_weight", undesirable_weight)
    _check_pairs(policy_logps=policy_logps, ref_logps=ref_logps)
    good = check_mask("desirable", desirable, policy_logps.shape)
    if isinstance(reference_point, torch.Tensor) and reference_point.ndim != 0:
        raise ValueError(f"reference_point: expected a number or a 0-dim tensor, got shape "
                         f"{tuple(reference_point.shape)}")
    r = policy_logps - ref_logps
    losses = torch.where(good, desirable_weight * (1 - torch.sigmoid(beta * (r - reference_point))),
                         undesirable_weight * (1 - torch.sigmoid(beta * (reference_point - r))))
    return reduce(losses, reduction)


def dpo_loss_fn(*, beta: float = 0.1, loss_type: str = "sigmoid", label_smoothing: float = 0.0):
    """A ``loss_fn(model, inputs, targets)`` for :func:`roadmap_lib.training.train`.

    ``inputs = (ids, completion_mask)``, both (2·batch, seq): the chosen rows, then the rejected rows
    of the same pairs; ``targets`` (2·batch,) are the reference model's log-probs of those rows,
    computed once before training (the reference never changes).
    """
    check_positive("beta", beta)
    check_choice("loss_type", loss_type, DPO_LOSS_TYPES)
    check_range("label_smoothing", label_smoothing, 0.0, 0.5)

    def loss_fn(model: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        ids, completion_mask = inputs
        if ids.shape[0] % 2 or targets.shape != ids.shape[:1]:
            raise ValueError(f"inputs/targets: expected an even number of rows (chosen, then rejected) and "
                             f"targets of shape ({ids.shape[0]},), got ids {tuple(ids.shape)}, "
                             f"targets {tuple(targets.shape)}")
        chosen, rejected = sequence_logprobs(model, ids, completion_mask).chunk(2)
        ref_chosen, ref_rejected = targets.chunk(2)
        return dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=beta, loss_type=loss_type,
                        label_smoothing=label_smoothing)

    return loss_fn


__all__ = ["DPO_LOSS_TYPES", "cpo_loss", "dpo_loss", "dpo_loss_fn", "implicit_rewards", "kto_loss",
           "kto_reference_point", "log1mexp", "orpo_loss", "orpo_odds_ratio_loss", "preference_metrics",
           "simpo_loss"]
