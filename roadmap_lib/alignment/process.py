"""Outcome rewards and process rewards for step-by-step solutions, and best-of-n selection.

The task is :mod:`roadmap_lib.reasoning`'s multi-step sum mod m with a scratchpad: the prompt
``3+5+2+7=`` is answered ``8,0,7#7.``: the running sum after each addition, then the answer. A
solution is right in two different senses:

- **outcome**: its final answer (after ``#``) is right. Checking it needs the answer key;
- **process**: every step follows from the line before it, i.e. step k is
  ``(previous written value + the k-th added digit) mod m`` (the first step starts from the first
  digit), and the answer repeats the last step. Checking it needs only the problem.

A right answer can follow a wrong path (a step written wrong but not used, two slips that cancel);
an outcome reward counts it a success, a process reward does not (Uesato et al. 2022; Lightman et
al. 2023). Both rewards here are exact rules; :class:`StepClassifier` is a *learned* process reward
model (PRM): a small MLP that reads one step at a time and is trained on labelled steps, whose step
probabilities :func:`~roadmap_lib.alignment.aggregate_step_rewards` multiplies into a solution score.

:func:`best_of_n` picks, among n candidate solutions of each problem, the one a reward scores
highest (the first on ties); :func:`majority_pick` picks a candidate with the most frequent answer
(self-consistency, Wang et al. 2023), which needs no reward at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from roadmap_lib.reasoning import END, answer, majority_vote, parse_answer, running_sums

from .reward import aggregate_step_rewards


def parse_scratchpad(text: str) -> tuple[list[int], int] | None:
    """``"8,0,7#7."`` -> ``([8, 0, 7], 7)``; None if the text is not steps (single digits separated
    by commas), ``#``, one digit and ``.``."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    final = parse_answer(text)
    head, sep, _ = text.partition("#")
    if final is None or not sep or not text.endswith(END) or text.count(END) != 1:
        return None
    parts = head.split(",") if head else []
    if any(len(p) != 1 or not p.isdigit() for p in parts):
        return None
    return [int(p) for p in parts], final


def step_labels(digits: Sequence[int], text: str, modulus: int = 10) -> list[bool] | None:
    """One label per step of ``text`` and one for its answer (``len(digits)`` labels in all):
    step k is right iff it equals the previous written value (``digits[0]`` for the first) plus
    ``digits[k]`` mod ``modulus``; the answer is right iff it equals the last written step.
    None if the text is malformed or has the wrong number of steps (no step can be judged)."""
    running_sums(digits, modulus)  # validates digits and modulus
    parsed = parse_scratchpad(text)
    if parsed is None or len(parsed[0]) != len(digits) - 1:
        return None
    steps, final = parsed
    labels, prev = [], digits[0]
    for d, s in zip(digits[1:], steps):
        labels.append(s == (prev + d) % modulus)
        prev = s
    return labels + [final == prev]


def outcome_reward(digits: Sequence[int], text: str, modulus: int = 10) -> float:
    """1.0 if the final answer of ``text`` is the sum of ``digits`` mod ``modulus``, else 0.0."""
    return float(parse_answer(text) == answer(digits, modulus))


def process_reward(digits: Sequence[int], text: str, modulus: int = 10) -> float:
    """1.0 if every step of ``text`` and its answer are right (:func:`step_labels`), else 0.0.
    A process-correct solution always has the right final answer; the converse fails."""
    labels = step_labels(digits, text, modulus)
    return float(labels is not None and all(labels))


def step_features(digits: Sequence[int], text: str, modulus: int = 10) -> torch.Tensor | None:
    """What a step verifier reads, one row per step and one for the answer ->
    (len(digits), 3 * modulus + 1) float32, or None if malformed (as :func:`step_labels`).

    Row k is one-hot(previous written value) | one-hot(digit added; all zero for the answer row) |
    one-hot(value written) | 1 for the answer row. Whether a row is right is a function of the row
    alone, so a model that reads rows can in principle be exact.
    """
    if step_labels(digits, text, modulus) is None:
        return None
    steps, final = parse_scratchpad(text)
    m, n = modulus, len(digits)
    previous = [digits[0], *steps]                      # what each row starts from
    added = [m + d for d in digits[1:]] + [3 * m]       # the answer row: its flag instead of a digit
    written = [2 * m + s for s in [*steps, final]]
    rows = torch.zeros(n, 3 * m + 1)
    rows[torch.arange(n).repeat(3), torch.tensor(previous + added + written)] = 1
    return rows


class StepClassifier(nn.Module):
    """A learned process reward model: P(step is right) from :func:`step_features` rows.
    ``forward(rows)`` (steps, 3m+1) -> logits (steps,)."""

    def __init__(self, modulus: int = 10, hidden: int = 32) -> None:
        super().__init__()
        self.modulus = modulus
        self.net = nn.Sequential(nn.Linear(3 * modulus + 1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.net(rows).squeeze(-1)

    @torch.no_grad()
    def score(self, problems: Sequence[Sequence[int]], texts: Sequence[str]) -> torch.Tensor:
        """Each solution's score -> (len(texts),): the product of its step probabilities, as
        Lightman et al. score a solution with their PRM; 0.0 for a malformed one. ``problems[i]``
        is the digits of ``texts[i]``; one forward pass over all their steps."""
        if len(problems) != len(texts):
            raise ValueError(f"texts: expected one per problem ({len(problems)}), got {len(texts)}")
        feats = [step_features(p, t, self.modulus) for p, t in zip(problems, texts)]
        ok = [i for i, f in enumerate(feats) if f is not None]
        out = torch.zeros(len(texts))
        if not ok:
            return out
        lengths = [len(feats[i]) for i in ok]
        probs = torch.sigmoid(self(torch.cat([feats[i] for i in ok])))
        padded = torch.ones(len(ok), max(lengths))
        mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
        padded[mask] = probs
        out[ok] = aggregate_step_rewards(padded, mask, how="prod")
        return out


def train_step_classifier(rows: torch.Tensor, labels: torch.Tensor, *, modulus: int = 10, hidden: int = 32,
                          steps: int = 300, lr: float = 1e-2, seed: int = 0) -> StepClassifier:
    """Fit a :class:`StepClassifier` on labelled steps: ``rows`` (N, 3m+1) from
    :func:`step_features`, ``labels`` (N,) 0/1. Full-batch Adam on the binary cross-entropy."""
    if not isinstance(rows, torch.Tensor) or rows.ndim != 2 or rows.shape[1] != 3 * modulus + 1:
        raise ValueError(f"rows: expected a (N, {3 * modulus + 1}) tensor, got "
                         f"{tuple(rows.shape) if isinstance(rows, torch.Tensor) else type(rows).__name__}")
    if not isinstance(labels, torch.Tensor) or labels.shape != rows.shape[:1]:
        raise ValueError(f"labels: expected shape ({rows.shape[0]},) like rows, got "
                         f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected an int >= 1, got {steps!r}")
    torch.manual_seed(seed)
    model = StepClassifier(modulus, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    target = labels.float()
    for _ in range(steps):
        loss = nn.functional.binary_cross_entropy_with_logits(model(rows), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def best_of_n(scores: torch.Tensor) -> torch.Tensor:
    """Index of the highest-scoring candidate in each row of ``scores`` (problems, n) -> (problems,)
    int64; ties go to the first (candidates are exchangeable samples, so this is a fair draw)."""
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2 or scores.shape[1] == 0:
        raise ValueError(f"scores: expected a (problems, n) tensor with n >= 1, got "
                         f"{tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__}")
    n = scores.shape[1]
    # the first maximum: the largest (score, -index) pair
    best = scores.amax(-1, keepdim=True)
    idx = torch.arange(n).expand_as(scores)
    return torch.where(scores == best, idx, n).amin(-1)


def majority_pick(texts: Sequence[str]) -> int:
    """Index of the first candidate whose answer is the most frequent one (ties: the answer seen
    first); 0 if no candidate has a well-formed answer."""
    if len(texts) == 0:
        raise ValueError("texts: expected at least one candidate, got none")
    answers = [parse_answer(t) for t in texts]
    winner = majority_vote(answers)
    return 0 if winner is None else answers.index(winner)


__all__ = ["StepClassifier", "best_of_n", "majority_pick", "outcome_reward", "parse_scratchpad", "process_reward",
           "step_features", "step_labels", "train_step_classifier"]
