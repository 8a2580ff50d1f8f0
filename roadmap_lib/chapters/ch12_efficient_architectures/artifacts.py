"""Chapter 12's shipped artifact: the results of the mixer sweep (7 variants x 3 seeds)."""

from __future__ import annotations

import json
from pathlib import Path

from roadmap_lib import DATA_DIR
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.zoo import Artifact, check

from . import experiment

NAME = "ch12-sweep"
FILE = "12_efficient_sweep.json"
#: the runs ``verify`` trains again (one attention and one state-space model, seed 0)
RECHECK = (("linear", 0), ("s4d", 0))


def build(root: Path) -> None:
    record = experiment.sweep()
    record["command"] = f"python -m roadmap_lib build {NAME}"
    atomic_write_text(Path(root) / FILE, json.dumps(record, indent=1) + "\n")


def load(root: Path | None = None) -> dict:
    path = Path(root if root is not None else DATA_DIR) / FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not built: run `python -m roadmap_lib build {NAME}`")
    return json.loads(path.read_text(encoding="utf-8"))


def verify(root: Path):
    """Retrain the :data:`RECHECK` runs and compare their held-out metrics with the record; check
    that every variant has all its seeds."""
    record = load(root)
    runs = {(r["variant"], r["seed"]): r for r in record["runs"]}
    checks = [check("runs recorded", len(runs), len(experiment.VARIANTS) * len(experiment.SEEDS), 0)]
    task = experiment.make_task()
    for variant, seed in RECHECK:
        got = experiment.run(variant, seed, task)
        want = runs[variant, seed]
        checks.append(check(f"{variant} seed {seed} text loss", got["text_loss"], want["text_loss"], 0.02))
        checks.append(check(f"{variant} seed {seed} recall accuracy", got["recall_acc"], want["recall_acc"], 0.03))
    return checks


ARTIFACTS = [Artifact(NAME, "12", "chapter 12's sweep: 7 sequence mixers x 3 seeds on text + associative recall",
                      (FILE,), build, verify, seed=0)]
