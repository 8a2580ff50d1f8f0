"""Chapter 03's shipped artifact: the extrapolation table (every positional scheme, 1x/2x/4x) and
the trained ALiBi model the chapter studies further."""

from __future__ import annotations

import json
from pathlib import Path

from roadmap_lib.chapters.ch03_positional_encodings import extrapolation as ex
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.zoo import Artifact, check

#: The replay of a run's first ``ex.REPLAY_STEPS`` steps lands on the recorded losses to about
#: 1e-6 on one machine; other CPUs round differently in the last digits, and 100 steps of AdamW
#: amplify that a little.
REPLAY_TOL = 1e-3
#: Scoring the shipped weights is a fixed computation (no training): the same numbers up to the
#: rounding of another CPU's kernels.
SCORE_TOL = 1e-4


def _build(root: Path) -> None:
    results, kept = ex.run_all()
    ex.save_trained(kept, root / ex.CHECKPOINT_FILE)
    atomic_write_text(root / ex.RESULTS_FILE, json.dumps(results, indent=1) + "\n")


def _verify(root: Path):
    """Replay the start of the kept scheme's training, and score the shipped weights.

    The whole table is reproduced by ``build`` (about 10 minutes); this check costs seconds."""
    info = json.loads((root / ex.RESULTS_FILE).read_text(encoding="utf-8"))
    cfg = ex.experiment_config(info)
    _, replay = ex.train_scheme(ex.KEPT_SCHEME, cfg, progress=False, stop_at=ex.REPLAY_STEPS)
    recorded = info["first_losses"][ex.KEPT_SCHEME]
    worst = max(abs(r["loss"] - want) for r, want in zip(replay.log, recorded))
    checks = [check(f"{ex.KEPT_SCHEME}: steps replayed", len(replay.log), len(recorded), 0),
              check(f"{ex.KEPT_SCHEME}: largest loss difference over the replayed steps", worst, 0.0,
                    REPLAY_TOL)]
    got = ex.score(ex.load_trained(root / ex.CHECKPOINT_FILE), ex.KEPT_SCHEME, cfg)
    return checks + [check(f"{ex.KEPT_SCHEME} (shipped weights) loss at length {n}", got[n], want, SCORE_TOL)
                     for n, want in info["rows"][ex.KEPT_SCHEME].items()]


ARTIFACTS = [
    Artifact("03-extrapolation", "03", "validation loss of the chapter's character LM by positional "
             "scheme at 1x, 2x and 4x the training length, and the trained ALiBi model",
             (ex.RESULTS_FILE, ex.CHECKPOINT_FILE), _build, _verify),
]
