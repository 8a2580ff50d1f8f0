"""The checks of chapter 21's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (from the core modules), so the
notebook holds no reference a student could call.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import torch

from roadmap_lib.evaluation import bootstrap_ci
from roadmap_lib.exercises import check_close, check_function
from roadmap_lib.metrics import squad_f1

# ---- exercise 21.1: SQuAD F1 ---------------------------------------------------------------


def _f1(p: list[str], g: list[str], multiset: bool = True) -> float:
    if not p or not g:
        return float(p == g)
    same = sum((Counter(p) & Counter(g)).values()) if multiset else len(set(p) & set(g))
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def _lower_split(s: str) -> list[str]:
    return s.lower().split()


def _norm(s: str) -> list[str]:
    s = "".join(ch for ch in s.lower() if ch not in set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'))
    return re.sub(r"\b(a|an|the)\b", " ", s).split()


SQUAD_MISTAKES = {
    "no normalisation beyond lower-casing (punctuation and articles still count)":
        lambda pred, golds: max(_f1(_lower_split(pred), _lower_split(g)) for g in golds),
    "only the first gold answer is used (SQuAD takes the best over all of them)":
        lambda pred, golds: _f1(_norm(pred), _norm(golds[0])),
    "sets of words instead of bags (a repeated word counts once)":
        lambda pred, golds: max(_f1(_norm(pred), _norm(g), multiset=False) for g in golds),
    "the mean over gold answers instead of the maximum":
        lambda pred, golds: sum(_f1(_norm(pred), _norm(g)) for g in golds) / len(golds),
}

SQUAD_CASES = [
    ("in Paris, France", ["Paris", "Paris France"]),
    ("The Eiffel Tower.", ["the eiffel tower", "Eiffel"]),
    ("Eiffel, Eiffel tower", ["Eiffel Tower", "tower"]),
    ("an apple", ["Apple Inc."]),
    ("New York New York", ["New York", "New York City"]),
    ("New York, New York", ["new york new york city"]),
]


def squad_cases():
    return [((pred, golds), torch.tensor(squad_f1(pred, golds), dtype=torch.float64)) for pred, golds in SQUAD_CASES]


def check_squad_f1(fn) -> None:
    """``fn(prediction: str, golds: list[str]) -> float``: SQuAD's F1, best over the gold answers."""
    check_function(lambda p, g: torch.tensor(float(fn(p, g)), dtype=torch.float64), squad_cases(),
                   name="squad_f1", atol=1e-9, mistakes=SQUAD_MISTAKES, forbid=[squad_f1])


# ---- exercise 21.2: acc_norm's choice ------------------------------------------------------


def _pick(logliks: torch.Tensor, lengths: list[float]) -> torch.Tensor:
    return (logliks / torch.tensor(lengths, dtype=torch.float64)).argmax()


ACC_NORM_MISTAKES = {
    "divided by the number of characters instead of UTF-8 bytes":
        lambda ll, choices: _pick(ll, [len(c) for c in choices]),
    "not normalised at all (that is acc, not acc_norm)": lambda ll, choices: ll.argmax(),
    "argmin instead of argmax (log-likelihoods are negative: higher is better)":
        lambda ll, choices: (ll / torch.tensor([len(c.encode("utf-8")) for c in choices], dtype=torch.float64)).argmin(),
}

ACC_NORM_CASES = [
    # case 1 is chosen so that every declared mistake gives a different wrong answer on it
    ([-7.0, -5.2, -40.0, -3.0], [" ééé", " abc", " a long answer here", " a"]),
    ([-6.0, -9.0, -7.5], [" cat", " caterpillar", " cats"]),
    ([-12.0, -11.0], [" café au lait", " cafe"]),
    ([-4.0, -4.2, -30.0, -9.0], [" “quoted”", " quoted", " a much longer phrase", " naïve"]),
    ([-7.0, -6.0], [" ééé", " eeee"]),
]


def acc_norm_cases():
    out = []
    for ll, choices in ACC_NORM_CASES:
        ll = torch.tensor(ll, dtype=torch.float64)
        out.append(((ll, choices), _pick(ll, [len(c.encode("utf-8")) for c in choices])))
    return out


def check_acc_norm_choice(fn) -> None:
    """``fn(logliks (n_choices,), choices: list[str]) -> int``: the choice acc_norm picks."""
    check_function(lambda ll, ch: torch.tensor(int(fn(ll, ch))), acc_norm_cases(), name="acc_norm_choice",
                   atol=0, mistakes=ACC_NORM_MISTAKES)


# ---- exercise 21.3: predict, then measure ----------------------------------------------------


def paired_difference_ci(a: torch.Tensor, b: torch.Tensor, n: int = 1000, seed: int = 0):
    """The paired bootstrap 95% interval of mean(a) - mean(b) (per-item 0/1 scores)."""
    return bootstrap_ci(lambda x, y: float(x.mean() - y.mean()), a, b, n=n, seed=seed)


def check_prediction(prediction: float, measured: float, a: torch.Tensor, b: torch.Tensor) -> None:
    """``measured`` must be the half-width of :func:`paired_difference_ci` on ``a``, ``b``; the
    prediction is compared with it (within 0.02 counts as a good prediction)."""
    ci = paired_difference_ci(a, b)
    truth = (ci.high - ci.low) / 2
    check_close(measured, truth, name=f"half-width of the paired 95% interval on {len(a)} items", atol=1e-9)
    if not (isinstance(prediction, (int, float)) and math.isfinite(prediction) and prediction >= 0):
        raise ValueError(f"prediction: expected a half-width >= 0, got {prediction!r}")
    print(f"you predicted ±{prediction:.3f}; the measurement is ±{truth:.3f} "
          f"({'within' if abs(prediction - truth) <= 0.02 else 'off by more than'} 0.02).")


__all__ = ["check_acc_norm_choice", "check_prediction", "check_squad_f1", "paired_difference_ci"]
