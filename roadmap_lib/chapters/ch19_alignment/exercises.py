"""The checks of chapter 19's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (the library's ``dpo_loss`` and
``rloo_advantages``, which the answer may not call) and declares, as small wrong implementations,
the mistakes it names in plain words ("likely mistake: ..."). Exercise 19.3 is a "predict, then
measure" exercise: the notebook compares the prediction with a measurement.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from roadmap_lib.alignment import dpo_loss, rloo_advantages
from roadmap_lib.exercises import check_function

# ---- exercise 19.1: DPO from four numbers ---------------------------------------------------------

DPO_MISTAKES = {
    "the minus sign is missing: the loss is −log σ(margin), minimised when the margin is large":
        lambda pc, pr, rc, rr, beta: F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean(),
    "the reference is left out: each log-ratio is the policy's log-prob minus the reference's":
        lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * (pc - pr)).mean(),
    "chosen and rejected are swapped: the margin is the chosen log-ratio minus the rejected one":
        lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * ((pr - rr) - (pc - rc))).mean(),
    "β is missing: the margin is β times the difference of the log-ratios":
        lambda pc, pr, rc, rr, beta: -F.logsigmoid((pc - rc) - (pr - rr)).mean(),
    "the losses of the batch are summed: the DPO loss is their mean":
        lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).sum(),
}


def dpo_cases() -> list[tuple[tuple, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    cases = []
    for beta in (0.1, 0.5):
        pc, pr, rc, rr = (-20 + 5 * torch.randn(8, generator=gen, dtype=torch.float64) for _ in range(4))
        cases.append(((pc, pr, rc, rr, beta), dpo_loss(pc, pr, rc, rr, beta=beta)))
    return cases


def check_dpo_loss(fn) -> None:
    """Exercise 19.1: ``fn(pc, pr, rc, rr, beta)`` is the mean DPO loss, against ``dpo_loss``."""
    check_function(fn, dpo_cases(), name="my_dpo_loss", mistakes=DPO_MISTAKES, forbid=[dpo_loss])


# ---- exercise 19.2: RLOO's baseline ---------------------------------------------------------------

RLOO_MISTAKES = {
    "the baseline includes the sample's own reward (the group mean): leave the sample out":
        lambda r: r - r.mean(-1, keepdim=True),
    "the sum of the others is divided by k: there are k − 1 other samples":
        lambda r: r - (r.sum(-1, keepdim=True) - r) / r.shape[1],
    "the mean runs over the prompts (dim 0): the group is a row, the k samples of one prompt":
        lambda r: r - (r.sum(0, keepdim=True) - r) / (r.shape[0] - 1),
    "the sign is flipped: the advantage is the reward minus the baseline":
        lambda r: (r.sum(-1, keepdim=True) - r) / (r.shape[1] - 1) - r,
}


def rloo_cases() -> list[tuple[tuple, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [((r,), rloo_advantages(r)) for r in (torch.randn(3, 4, generator=gen), torch.randn(5, 2, generator=gen))]


def check_leave_one_out(fn) -> None:
    """Exercise 19.2: ``fn(rewards)`` for rewards (prompts, k), against ``rloo_advantages``."""
    check_function(fn, rloo_cases(), name="leave_one_out", mistakes=RLOO_MISTAKES, forbid=[rloo_advantages])
