"""Chapter 21's exercise checks: the reference passes, each declared mistake, written the way a
student would write it, is named in the message."""

import re
import string
from collections import Counter

import pytest
import torch

from roadmap_lib.chapters.ch21_evaluation import exercises as X
from roadmap_lib.exercises import ExerciseError
from roadmap_lib.metrics import squad_f1


def _norm(s):
    s = "".join(c for c in s.lower() if c not in string.punctuation)
    return re.sub(r"\b(a|an|the)\b", " ", s).split()


def student_f1(pred, golds):
    best = 0.0
    for g in golds:
        p, q = _norm(pred), _norm(g)
        same = sum((Counter(p) & Counter(q)).values())
        if same:
            pr, rc = same / len(p), same / len(q)
            best = max(best, 2 * pr * rc / (pr + rc))
    return best


def f1_first_gold_only(pred, golds):
    return student_f1(pred, golds[:1])


def f1_no_normalisation(pred, golds):
    best = 0.0
    for g in golds:
        p, q = pred.lower().split(), g.lower().split()
        same = sum((Counter(p) & Counter(q)).values())
        if same:
            best = max(best, 2 * same / (len(p) + len(q)))
    return best


def f1_sets(pred, golds):
    best = 0.0
    for g in golds:
        p, q = _norm(pred), _norm(g)
        same = len(set(p) & set(q))
        if same:
            best = max(best, 2 * (same / len(p)) * (same / len(q)) / (same / len(p) + same / len(q)))
    return best


def test_squad_check():
    X.check_squad_f1(student_f1)
    # the library's own squad_f1 (the notebook imports roadmap_lib.metrics) is refused, called or passed
    with pytest.raises(ExerciseError, match="library's own `squad_f1`"):
        X.check_squad_f1(lambda p, g: squad_f1(p, g))
    with pytest.raises(ExerciseError, match="library's own `squad_f1`"):
        X.check_squad_f1(squad_f1)
    for wrong, words in [(f1_first_gold_only, "first gold answer"), (f1_no_normalisation, "no normalisation"),
                         (f1_sets, "sets of words")]:
        with pytest.raises(ExerciseError, match=f"likely mistake: .*{words}"):
            X.check_squad_f1(wrong)


def acc_norm_student(ll, choices):
    scores = [float(x) / len(c.encode("utf-8")) for x, c in zip(ll, choices)]
    return max(range(len(scores)), key=lambda i: scores[i])


def acc_norm_chars(ll, choices):
    return int(torch.argmax(ll / torch.tensor([len(c) for c in choices])))


def acc_norm_none(ll, choices):
    return int(ll.argmax())


def test_acc_norm_check():
    X.check_acc_norm_choice(acc_norm_student)
    with pytest.raises(ExerciseError, match="likely mistake: divided by the number of characters"):
        X.check_acc_norm_choice(acc_norm_chars)
    with pytest.raises(ExerciseError, match="likely mistake: not normalised at all"):
        X.check_acc_norm_choice(acc_norm_none)


def test_prediction_check(capsys):
    g = torch.Generator().manual_seed(0)
    a, b = (torch.rand(80, generator=g) < 0.7).double(), (torch.rand(80, generator=g) < 0.6).double()
    ci = X.paired_difference_ci(a, b)
    half = (ci.high - ci.low) / 2
    X.check_prediction(0.1, half, a, b)
    assert "you predicted" in capsys.readouterr().out
    with pytest.raises(ExerciseError):
        X.check_prediction(0.1, half + 0.05, a, b)
    with pytest.raises(ValueError, match="prediction: expected a half-width"):
        X.check_prediction(-1.0, half, a, b)


def f1_mean_over_golds(pred, golds):
    return sum(student_f1(pred, [g]) for g in golds) / len(golds)


def acc_norm_argmin(ll, choices):
    scores = [float(x) / len(c.encode("utf-8")) for x, c in zip(ll, choices)]
    return min(range(len(scores)), key=lambda i: scores[i])


@pytest.mark.parametrize("check, wrong, words", [
    (X.check_squad_f1, f1_mean_over_golds, "the mean over gold answers instead of the maximum"),
    (X.check_acc_norm_choice, acc_norm_argmin, "argmin instead of argmax"),
])
def test_the_other_declared_mistakes_are_named(check, wrong, words):
    with pytest.raises(ExerciseError, match=f"likely mistake: {words}"):
        check(wrong)
