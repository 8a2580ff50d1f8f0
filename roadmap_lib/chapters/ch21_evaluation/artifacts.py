"""Chapter 21's shipped artifact: the results of the evaluation sweep (:mod:`.experiments`).

Four models x 3 seeds x 100 items, six perturbations, training-split items, two leak strengths and
the judge's swap test take a few minutes on one thread, so ``python -m roadmap_lib build
21-evaluation`` runs it once; ``verify`` re-scores seed 0's clean items with the zoo char GPT and
the draft model on its first 50 items and re-runs the judge on them (well under a minute).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from roadmap_lib.chapters.ch21_evaluation import experiments as E
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads
from roadmap_lib.zoo import Artifact, check

NAME = "21-evaluation"
RESULTS = "21_evaluation.json"


def _build(root: Path) -> None:
    with cpu_threads(1):
        torch.manual_seed(0)
        start = time.perf_counter()
        study = E.run_study(progress=True)
        seconds = time.perf_counter() - start
    info = {"name": NAME, "description": "chapter 21: a 4-choice Jargon File benchmark scored by log-likelihood "
            "(acc, acc_norm) with 4 models, perturbed, training-split and leaked items, and a likelihood "
            "judge's swap test; 3 seeds of 100 items", **study, "seconds": round(seconds, 1),
            "command": f"python -m roadmap_lib build {NAME}", "torch": torch.__version__}
    atomic_write_text(root / RESULTS, json.dumps(info) + "\n")


def results(root: Path | None = None) -> dict:
    from roadmap_lib import DATA_DIR
    return json.loads(((root or DATA_DIR) / RESULTS).read_text(encoding="utf-8"))


def _verify(root: Path):
    """Re-score the first 50 items of seed 0 with the char GPT and the draft model and re-run the
    judge on them (the items come from a seeded stream: the first 50 of the recorded 100). A count
    may move by one item where another CPU's float rounding flips a near-tie."""
    info = results(root)
    n = 50
    with cpu_threads(1):
        got = E.run_study((0,), n, parts=("models", "judge"), model_names=("gpt-char-jargon", "gpt-char-draft"))
    checks = []
    for name in ("gpt-char-jargon", "gpt-char-draft"):
        for metric in ("acc", "acc_norm"):
            checks.append(check(f"{name} {metric}, right answers among the first {n} items of seed 0",
                                sum(got["models"][name]["0"][metric]), sum(info["models"][name]["0"][metric][:n]), 1))
    for kind in ("real", "tie"):
        g, r = torch.tensor(got["judge"][kind]["0"]["ab"]), torch.tensor(info["judge"][kind]["0"]["ab"][:n])
        checks.append(check(f"judge scores, {kind} pairs (first {n} items of seed 0, max abs difference)",
                            (g - r).abs().max(), 0, 1e-4))
    return checks


ARTIFACTS = [
    Artifact(NAME, "21", "the 4-choice Jargon File benchmark: 4 models, perturbations, contamination (training-split "
             "and leaked items) and a likelihood judge's swap test, 3 seeds", (RESULTS,), _build, _verify,
             needs=("gpt-char-jargon", "gpt-char-draft")),
]
