"""The three-seed sweep behind chapter 16's table: every method of
:data:`~roadmap_lib.chapters.ch16_peft_lora_qlora.experiments.METHODS` fine-tuned with seeds 0, 1
and 2 for :data:`~roadmap_lib.chapters.ch16_peft_lora_qlora.experiments.STEPS` steps, one thread,
written to ``data/16_peft_sweep.json`` by ``python -m roadmap_lib build 16-peft-sweep``.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from roadmap_lib.chapters.ch16_peft_lora_qlora.experiments import (
    METHODS,
    SEEDS,
    STEPS,
    base_val_loss,
    run_one,
)
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import map_runs

RESULTS = "16_peft_sweep.json"
COMMAND = "python -m roadmap_lib build 16-peft-sweep"


def _run(args: tuple[str, int, int]) -> dict:
    return run_one(*args)


def build(path: Path, methods=tuple(METHODS), seeds=SEEDS, steps: int = STEPS, jobs: int = 1) -> dict:
    """Run the sweep (seeded, one thread per run, ``jobs`` runs at a time) and write it to ``path``
    (atomically); return the record. Every run is the same with any ``jobs``."""
    cells = [(m, s, steps) for m in methods for s in seeds]
    runs_in_order = map_runs(_run, cells, jobs)  # refuses a bad jobs before anything runs
    start = time.perf_counter()
    runs = list(tqdm(runs_in_order, total=len(cells), desc="runs"))
    record = {"command": COMMAND, "steps": steps, "seeds": list(seeds),
              "base_val_loss": base_val_loss(), "runs": runs,
              "seconds": round(time.perf_counter() - start, 1), "jobs": jobs,
              "torch": torch.__version__, "machine": platform.machine()}
    atomic_write_text(Path(path), json.dumps(record, indent=1) + "\n")
    return record


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def summary(record: dict) -> list[dict]:
    """One row per method, in :data:`METHODS` order: trainable parameters, mean and standard
    deviation (across seeds) of the validation loss, every seed's value, median s/step."""
    rows = []
    for name in METHODS:
        runs = [r for r in record["runs"] if r["method"] == name]
        if not runs:
            continue
        losses = [r["val_loss"] for r in runs]
        rows.append({"method": name, "trainable": runs[0]["trainable"],
                     "mean": statistics.fmean(losses),
                     "std": statistics.stdev(losses) if len(losses) > 1 else 0.0,
                     "losses": losses,
                     "seconds_per_step": statistics.median(r["seconds_per_step"] for r in runs)})
    return rows


def compare(rows: list[dict], a: str, b: str) -> dict:
    """Method ``a`` against ``b``: the gap of their mean losses, its standard error from the two
    spreads across seeds, ``sqrt(sd_a² / n_a + sd_b² / n_b)``, and whether the gap exceeds twice
    that (otherwise the chapter calls it no difference)."""
    by = {r["method"]: r for r in rows}
    for name, arg in ((a, "a"), (b, "b")):
        if name not in by:
            raise ValueError(f"{arg}: expected one of {sorted(by)}, got {name!r}")
    ra, rb = by[a], by[b]
    gap = ra["mean"] - rb["mean"]
    se = math.sqrt(ra["std"] ** 2 / len(ra["losses"]) + rb["std"] ** 2 / len(rb["losses"]))
    return {"a": a, "b": b, "gap": gap, "se": se, "real": abs(gap) > 2 * se}


__all__ = ["COMMAND", "RESULTS", "build", "compare", "load", "summary"]
