"""Chapter 22's shipped artifact: the fine-tuning runs of :func:`.experiments.run_study`.

Three seeds x (a sentence classifier + a tagger) of the zoo's word BERT on the *intruder* task,
300 steps each, take several minutes on one thread, so ``python -m roadmap_lib build
22-applications`` runs them once and records every seed's scores and test predictions.
``verify`` re-scores the stored predictions against the shipped test split (accuracy, span F1)
and repeats the build's short check run (seed 0's tagger, 60 steps: well under a minute) to compare
its span F1.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from roadmap_lib.chapters.ch22_applications import experiments as E
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads
from roadmap_lib.zoo import Artifact, check

NAME = "22-applications"
RESULTS = "22_applications.json"
CHECK_STEPS = 60  # the short run that verify repeats


def _build(root: Path) -> None:
    with cpu_threads(1):
        start = time.perf_counter()
        study = E.run_study(progress=True)
        seconds = time.perf_counter() - start
        short = E.run_study((0,), steps=CHECK_STEPS, progress=False)
    study["check_run"] = {"seed": 0, "steps": CHECK_STEPS, "tagger_f1": short["tagger"]["0"]["f1"],
                          "classifier_accuracy": short["classifier"]["0"]["accuracy"]}
    info = {"name": NAME, "description": "chapter 22: the zoo word BERT fine-tuned on the intruder task as a "
            "sentence classifier and as a BIO tagger, 3 seeds, scored on the test split", **study,
            "seconds": round(seconds, 1), "command": f"python -m roadmap_lib build {NAME}",
            "torch": torch.__version__}
    atomic_write_text(root / RESULTS, json.dumps(info) + "\n")


def results(root: Path | None = None) -> dict:
    from roadmap_lib import DATA_DIR
    return json.loads(((root or DATA_DIR) / RESULTS).read_text(encoding="utf-8"))


def _verify(root: Path):
    """Re-score every seed's stored predictions (exact), and repeat the short check run: its scores
    may move a little where another CPU's float rounding changes a step."""
    from roadmap_lib.metrics import accuracy
    from roadmap_lib.tagging import span_scores

    info = results(root)
    te = E.Split("intruder", "test")
    gold = te.gold_tags()
    checks = []
    for seed in map(str, info["seeds"]):
        pred = torch.tensor(info["classifier"][seed]["pred"])
        checks.append(check(f"classifier accuracy, seed {seed} (re-scored)", accuracy(pred, te.labels),
                            info["classifier"][seed]["accuracy"], 1e-9))
        f1 = span_scores(E.flagged_to_tags(info["tagger"][seed]["flagged"], te.text), gold).f1
        checks.append(check(f"tagger span F1, seed {seed} (re-scored)", f1, info["tagger"][seed]["f1"], 1e-9))
    run = info["check_run"]
    with cpu_threads(1):
        got = E.run_study((run["seed"],), steps=run["steps"], progress=False)
    checks.append(check(f"tagger span F1, seed 0, {run['steps']} steps (retrained)", got["tagger"]["0"]["f1"],
                        run["tagger_f1"], 0.02))
    checks.append(check(f"classifier accuracy, seed 0, {run['steps']} steps (retrained)",
                        got["classifier"]["0"]["accuracy"], run["classifier_accuracy"], 0.01))
    return checks


ARTIFACTS = [
    Artifact(NAME, "22", "the zoo word BERT fine-tuned on the intruder task as a sentence classifier and as a "
             "BIO tagger, 3 seeds, with test predictions", (RESULTS,), _build, _verify, needs=("bert-word-jargon",)),
]
