"""Chapter 17's shipped artifact: the continual-learning results (every method, three seeds)."""

from __future__ import annotations

from pathlib import Path

from roadmap_lib.chapters.ch17_llmops.forgetting import (
    METHODS,
    RESULTS,
    SEEDS,
    build_results,
    load_results,
    run,
)
from roadmap_lib.zoo import Artifact, check

#: the cell that the verify and the chapter re-run live
LIVE_METHOD, LIVE_SEED = "replay 12.5%", 0


def _build(root: Path) -> None:
    build_results(root / RESULTS)


def _verify(root: Path):
    """Re-run one cell (replay 12.5 %, seed 0: 100 steps, about 30 s on one core) and compare its
    losses on both domains with the recorded ones; count the runs."""
    record = load_results(root / RESULTS)
    recorded = next(r for r in record["runs"] if (r["method"], r["seed"]) == (LIVE_METHOD, LIVE_SEED))
    got = run(LIVE_METHOD, LIVE_SEED, record["steps"])
    return [check(f"old-domain loss after ({LIVE_METHOD}, seed {LIVE_SEED})", got["after"]["old"],
                  recorded["after"]["old"], 2e-3),
            check(f"new-domain loss after ({LIVE_METHOD}, seed {LIVE_SEED})", got["after"]["new"],
                  recorded["after"]["new"], 2e-3),
            check("runs recorded", len(record["runs"]), len(METHODS) * len(SEEDS), 0)]


ARTIFACTS = [
    Artifact("17-continual", "17", "continual learning: the char GPT fine-tuned on Zetan text with "
             "plain fine-tuning, replay (12.5 %, 50 %), L2 to init and EWC; forgetting of English and gain "
             "on Zetan, 3 seeds", (RESULTS,), _build, _verify, needs=("gpt-char-jargon", "tasks")),
]
