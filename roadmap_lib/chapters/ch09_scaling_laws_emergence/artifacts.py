"""Chapter 09's shipped artifact: the results of the scaling sweep (no weights, curves and scores)."""

from __future__ import annotations

from pathlib import Path

from roadmap_lib.chapters.ch09_scaling_laws_emergence import sweep
from roadmap_lib.zoo import Artifact, check

#: a re-run on another machine may differ in the last float bits; 0.02 nats is far below the
#: loss gap between neighbouring sizes in the sweep
TOLERANCE = 0.02
VERIFY_STEPS = 200


def build(root: Path) -> None:
    sweep.build(root / sweep.FILE, jobs=2)


def verify(root: Path):
    """Re-train the two smallest sizes (seed 0) for VERIFY_STEPS steps; compare with their recorded curve."""
    record = sweep.load(root / sweep.FILE)
    checks = []
    for r in sweep.seed_runs(record, 0)[:2]:
        again = sweep.run(r["n_layers"], r["d_model"], steps=VERIFY_STEPS)
        got = again["val_loss"][again["val_steps"].index(VERIFY_STEPS)]
        rec = r["val_loss"][r["val_steps"].index(VERIFY_STEPS)]
        checks.append(check(f"val loss at step {VERIFY_STEPS}, L={r['n_layers']} d={r['d_model']}",
                            got, rec, TOLERANCE))
    return checks


ARTIFACTS = [Artifact("scaling-sweep-jargon", "09",
                      "15 tiny character GPTs x 12 token budgets x 3 seeds on jargon.txt: validation "
                      "curves and per-character scores (chapter 09's scaling laws and emergence)",
                      (sweep.FILE,), build, verify)]
