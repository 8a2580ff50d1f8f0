"""Chapter 19's exercise checks: the right answers pass; each declared mistake, written the way a
student would write it (independently of the module's mistake functions), is named; calling the
library's reference is refused."""

from __future__ import annotations

import re

import pytest
import torch

from roadmap_lib.alignment import dpo_loss, rloo_advantages
from roadmap_lib.chapters.ch19_alignment import exercises as ex
from roadmap_lib.exercises import ExerciseError


def dpo(pc, pr, rc, rr, beta, *, sign=-1.0, ref=True, swap=False, use_beta=True, reduce="mean"):
    chosen, rejected = (pc - rc, pr - rr) if ref else (pc, pr)
    if swap:
        chosen, rejected = rejected, chosen
    margin = (beta if use_beta else 1.0) * (chosen - rejected)
    losses = sign * torch.log(torch.sigmoid(margin))
    return losses.mean() if reduce == "mean" else losses.sum()


def loo(rewards, *, own=False, denom=None, dim=-1, flip=False):
    k = rewards.shape[dim]
    others = rewards.mean(dim, keepdim=True) if own else \
        (rewards.sum(dim, keepdim=True) - rewards) / (denom(k) if denom else k - 1)
    return others - rewards if flip else rewards - others


def test_right_answers_pass(capsys):
    ex.check_dpo_loss(dpo)
    ex.check_leave_one_out(loo)
    ex.check_leave_one_out(lambda r: torch.stack([r[:, i] - torch.cat([r[:, :i], r[:, i + 1:]], 1).mean(1)
                                                  for i in range(r.shape[1])], 1))
    assert capsys.readouterr().out.count("Correct") == 3


STUDENT = {
    (ex.check_dpo_loss, "the minus sign is missing"): lambda *a: dpo(*a, sign=1.0),
    (ex.check_dpo_loss, "the reference is left out"): lambda *a: dpo(*a, ref=False),
    (ex.check_dpo_loss, "chosen and rejected are swapped"): lambda *a: dpo(*a, swap=True),
    (ex.check_dpo_loss, "β is missing"): lambda *a: dpo(*a, use_beta=False),
    (ex.check_dpo_loss, "are summed"): lambda *a: dpo(*a, reduce="sum"),
    (ex.check_leave_one_out, "includes the sample's own reward"): lambda r: loo(r, own=True),
    (ex.check_leave_one_out, "divided by k"): lambda r: loo(r, denom=lambda k: k),
    (ex.check_leave_one_out, "over the prompts"): lambda r: loo(r, dim=0),
    (ex.check_leave_one_out, "the sign is flipped"): lambda r: loo(r, flip=True),
}


@pytest.mark.parametrize("check, words", list(STUDENT), ids=lambda x: getattr(x, "__name__", x))
def test_each_mistake_is_named(check, words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
        check(STUDENT[check, words])


@pytest.mark.parametrize("table", [ex.DPO_MISTAKES, ex.RLOO_MISTAKES])
def test_every_declared_mistake_has_a_student_version(table):
    assert {d for d in table for _, words in STUDENT if words in d} == set(table)


def test_calling_the_reference_is_refused():
    with pytest.raises(ExerciseError):
        ex.check_dpo_loss(lambda pc, pr, rc, rr, beta: dpo_loss(pc, pr, rc, rr, beta=beta))
    with pytest.raises(ExerciseError):
        ex.check_leave_one_out(lambda r: rloo_advantages(r))
