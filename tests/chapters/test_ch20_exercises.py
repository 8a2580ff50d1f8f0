"""Chapter 20's exercise checks: the right answers pass; each declared mistake, written the way a
student would write it (independently of the module's mistake functions), is named."""

from __future__ import annotations

import math
import re

import pytest
import torch

from roadmap_lib.chapters.ch20_responsible_ai import exercises as ex
from roadmap_lib.exercises import ExerciseError


def watermark_z(ids, table, *, own=False, poisson=False, half=False, every=False):
    gamma = 0.5 if half else table[0].float().mean().item()
    if own:
        green, n = table[ids, ids].sum(dim=1).double(), ids.shape[1]
    else:
        prev, nxt = ids[:, :-1], ids[:, 1:]
        green, n = table[prev, nxt].sum(dim=1).double(), ids.shape[1] - 1 + (1 if every else 0)
    var = n * gamma if poisson else n * gamma * (1 - gamma)
    return (green - gamma * n) / math.sqrt(var)


def word_association(W, A, B, *, normalise=True, reduce="mean", flip=False):
    if normalise:
        W, A, B = (x / x.norm(dim=1, keepdim=True) for x in (W, A, B))
    a, b = W @ A.T, W @ B.T
    a, b = (a.mean(dim=1), b.mean(dim=1)) if reduce == "mean" else (a.sum(dim=1), b.sum(dim=1))
    return b - a if flip else a - b


def test_right_answers_pass(capsys):
    ex.check_watermark_z(watermark_z)
    ex.check_association(word_association)
    assert capsys.readouterr().out.count("Correct") == 2


STUDENT = {
    (ex.check_watermark_z, "looked up with the token itself"): lambda i, t: watermark_z(i, t, own=True),
    (ex.check_watermark_z, "the variance is n·γ instead"): lambda i, t: watermark_z(i, t, poisson=True),
    (ex.check_watermark_z, "γ is taken as 0.5"): lambda i, t: watermark_z(i, t, half=True),
    (ex.check_watermark_z, "n counts every token"): lambda i, t: watermark_z(i, t, every=True),
    (ex.check_association, "dot products instead of cosines"):
        lambda W, A, B: word_association(W, A, B, normalise=False),
    (ex.check_association, "sums over the attribute words"):
        lambda W, A, B: word_association(W, A, B, reduce="sum"),
    (ex.check_association, "A and B swapped"): lambda W, A, B: word_association(W, A, B, flip=True),
}


@pytest.mark.parametrize("check, words", list(STUDENT), ids=lambda x: getattr(x, "__name__", x))
def test_each_mistake_is_named(check, words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
        check(STUDENT[check, words])


@pytest.mark.parametrize("table", [ex.WATERMARK_MISTAKES, ex.ASSOCIATION_MISTAKES])
def test_every_declared_mistake_has_a_student_version(table):
    assert {d for d in table for _, words in STUDENT if words in d} == set(table)


def test_the_prediction_check_reports_and_refuses_a_share_out_of_range(capsys):
    study = {"seeds": [0, 1], "z": {(1.0, 0): {100: torch.tensor([1.0, 3.0])},
                                    (1.0, 1): {100: torch.tensor([2.5, 0.5])}}}
    ex.check_prediction(0.4, 0.5, study, delta=1.0, length=100, threshold=2.0)
    assert "the measurement is 0.50 (within 0.1)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="prediction"):
        ex.check_prediction(40, 0.5, study, delta=1.0, length=100, threshold=2.0)
    with pytest.raises(ExerciseError):
        ex.check_prediction(0.4, 0.7, study, delta=1.0, length=100, threshold=2.0)
