"""Chapter 03's shipped artifact: the extrapolation table (every positional scheme, 1x/2x/4x)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from roadmap_lib.chapters.ch03_positional_encodings import extrapolation as ex
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.zoo import Artifact, check

#: The scheme re-trained by ``verify``: ALiBi, the quickest to train (82 s in the recorded build).
VERIFY_SCHEME = "alibi"
#: 1000 training steps amplify float rounding that differs between CPUs: re-trained on this
#: project's CI machine, ALiBi's losses came out 0.004-0.006 nats above the shipped ones (the old
#: and the refactored code give identical numbers here), so the check allows 0.01 nats. A gap
#: between two schemes in the shipped table that is smaller than this (sinusoidal vs learned at
#: 1x: 0.007) is within the noise of one training run.
RETRAIN_TOL = 0.01


def _build(root: Path) -> None:
    atomic_write_text(root / ex.RESULTS_FILE, json.dumps(ex.run_all(), indent=1) + "\n")


def _verify(root: Path):
    info = json.loads((root / ex.RESULTS_FILE).read_text(encoding="utf-8"))
    names = {f.name for f in fields(ex.ExperimentConfig)}
    cfg = ex.ExperimentConfig(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in info["experiment"].items() if k in names})
    model, _ = ex.train_scheme(VERIFY_SCHEME, cfg, progress=False)
    got = ex.score(model, VERIFY_SCHEME, cfg)
    return [check(f"{VERIFY_SCHEME} loss at length {n}", got[n], want, RETRAIN_TOL)
            for n, want in info["rows"][VERIFY_SCHEME].items()]


ARTIFACTS = [
    Artifact("03-extrapolation", "03", "validation loss of the chapter's character LM by positional "
             "scheme at 1x, 2x and 4x the training length", (ex.RESULTS_FILE,), _build, _verify),
]
