"""Chapter 19's process-vs-outcome experiment: best-of-n selection of scratchpad solutions.

The candidates come from a *scripted* solver (:func:`sample_solution`), a small program that makes
stated kinds of mistakes at stated rates, standing in for a model's samples so that the ground truth
of every step is known. It is not a trained model. For each problem of :mod:`roadmap_lib.reasoning`'s
sum-mod-10 task it adds the digits one at a time and writes the running sum; at each step, with
probability ``slip``, it writes a value off by 1 or 2, and then

- carries the wrong value on (probability ``1 - typo``): later steps follow from it, so the final
  answer is wrong unless a later slip happens to cancel it;
- or carries the right value on (probability ``typo``): the written step is wrong, but the answer
  stays right (a right answer on a wrong path).

:func:`run_selection` samples ``max(ns)`` candidates per test problem, trains the learned step
classifier on the labelled steps of separate training solutions, and records, for each selector
and each n (the first n candidates), the final-answer accuracy and the share of selected solutions
whose every step is right.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from roadmap_lib.alignment.process import (
    best_of_n,
    majority_pick,
    outcome_reward,
    process_reward,
    step_features,
    step_labels,
    train_step_classifier,
)
from roadmap_lib.reasoning import make_problem

SELECTORS = ("outcome", "process", "prm", "majority")
LABELS = {"outcome": "outcome reward (answer key)", "process": "process reward (exact step check)",
          "prm": "learned PRM (product of step probs)", "majority": "majority vote (no reward)"}


def sample_solution(digits: Sequence[int], rng: random.Random, *, slip: float = 0.12, typo: float = 0.4,
                    modulus: int = 10) -> str:
    """A scratchpad completion (``"8,0,7#7."``) written by the scripted solver described above."""
    if not 0 <= slip <= 1 or not 0 <= typo <= 1:
        raise ValueError(f"slip, typo: expected probabilities in [0, 1], got slip={slip!r}, typo={typo!r}")
    carried, written = digits[0], []
    for d in digits[1:]:
        right = (carried + d) % modulus
        if rng.random() < slip:
            wrong = (right + rng.choice([-2, -1, 1, 2])) % modulus
            written.append(wrong)
            carried = right if rng.random() < typo else wrong
        else:
            written.append(right)
            carried = right
    return ",".join(map(str, written)) + f"#{carried}."


def _problems(rng: random.Random, n: int, n_digits: Sequence[int]) -> list[list[int]]:
    return [make_problem(rng, rng.choice(list(n_digits))) for _ in range(n)]


def held_out_candidates(seed: int, n_problems: int, n: int, *, n_digits: Sequence[int] = (5, 6, 7, 8),
                    slip: float = 0.12, typo: float = 0.4) -> tuple[list[list[int]], list[list[str]]]:
    """The test problems of a seed and ``n`` candidate solutions of each: problem i and its
    candidates do not depend on ``n_problems`` (each problem is drawn, then its candidates)."""
    rng = random.Random(10_000 + seed)
    problems, cands = [], []
    for _ in range(n_problems):
        problems.append(make_problem(rng, rng.choice(list(n_digits))))
        cands.append([sample_solution(problems[-1], rng, slip=slip, typo=typo) for _ in range(n)])
    return problems, cands


def demo_solutions(seed: int = 0, k: int = 3, n: int = 16) -> list[tuple[list[int], str]]:
    """The first candidate of each of the first ``k`` test problems of :func:`run_selection`'s
    ``seed`` (with its default settings and ``max(ns) = n``)."""
    problems, cands = held_out_candidates(seed, k, n)
    return [(p, c[0]) for p, c in zip(problems, cands)]


def run_selection(seed: int, *, n_problems: int = 200, ns: Sequence[int] = (1, 2, 4, 8, 16),
                  n_digits: Sequence[int] = (5, 6, 7, 8), train_solutions: int = 400, slip: float = 0.12,
                  typo: float = 0.4, prm_steps: int = 300, prm_hidden: int = 128) -> dict:
    """One seed of the experiment -> ``{"ns", "prm_step_accuracy", "single", "curves"}``.

    ``curves[selector]`` has ``"answer_accuracy"`` and ``"path_correct"``, one value per n;
    ``single`` describes one sample per problem (shares of right answers, fully right paths, and
    right answers on a wrong path); ``prm_step_accuracy`` is the learned PRM's accuracy on the
    test candidates' steps (threshold 0.5).
    """
    rng = random.Random(seed)
    # the PRM's training data: one solution to each of `train_solutions` other problems (another
    # random stream than the test problems'), labelled step by step
    train = [(p, sample_solution(p, rng, slip=slip, typo=typo)) for p in _problems(rng, train_solutions, n_digits)]
    rows = torch.cat([step_features(p, t) for p, t in train])
    labels = torch.tensor([lab for p, t in train for lab in step_labels(p, t)])
    prm = train_step_classifier(rows, labels, hidden=prm_hidden, steps=prm_steps, seed=seed)

    n_max = max(ns)
    test, cands = held_out_candidates(seed, n_problems, n_max, n_digits=n_digits, slip=slip, typo=typo)
    outcome = torch.tensor([[outcome_reward(p, t) for t in c] for p, c in zip(test, cands)])
    process = torch.tensor([[process_reward(p, t) for t in c] for p, c in zip(test, cands)])
    scores = {"outcome": outcome, "process": process,
              "prm": prm.score([p for p in test for _ in range(n_max)], [t for c in cands for t in c]).view(-1, n_max)}

    with torch.no_grad():  # the PRM's step accuracy, on the steps of each test problem's first candidate
        test_rows = torch.cat([step_features(p, c[0]) for p, c in zip(test, cands)])
        test_labels = torch.tensor([lab for p, c in zip(test, cands) for lab in step_labels(p, c[0])])
        prm_acc = ((prm(test_rows) > 0) == test_labels).float().mean().item()

    rows_idx = torch.arange(len(test))
    curves = {s: {"answer_accuracy": [], "path_correct": []} for s in SELECTORS}
    for n in ns:
        for s in SELECTORS:
            if s == "majority":
                pick = torch.tensor([majority_pick(c[:n]) for c in cands])
            else:
                pick = best_of_n(scores[s][:, :n])
            curves[s]["answer_accuracy"].append(outcome[rows_idx, pick].mean().item())
            curves[s]["path_correct"].append(process[rows_idx, pick].mean().item())
    first_o, first_p = outcome[:, 0], process[:, 0]
    single = {"answer_right": first_o.mean().item(), "path_right": first_p.mean().item(),
              "right_answer_wrong_path": ((first_o == 1) & (first_p == 0)).float().mean().item()}
    return {"ns": list(ns), "prm_step_accuracy": prm_acc, "single": single, "curves": curves}


def selection_stats(runs: Sequence[dict], selector: str, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over seeds, per n, of ``metric`` for ``selector`` -> two (len(ns),) tensors."""
    values = torch.tensor([r["curves"][selector][metric] for r in runs])
    return values.mean(0), values.std(0)
