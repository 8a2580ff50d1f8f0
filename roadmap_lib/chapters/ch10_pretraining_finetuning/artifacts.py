"""Chapter 10's shipped artifacts: the results of the fine-tuning-depth sweep."""

from __future__ import annotations

import json
from pathlib import Path

from roadmap_lib.chapters.ch10_pretraining_finetuning import finetune
from roadmap_lib.zoo import Artifact, check


def _build_depth(root: Path) -> None:
    finetune.build(root / finetune.RESULTS)


def _verify_depth(root: Path):
    """Re-run one cell (head only, seed 0: the cheapest, about 10 s on one core) and compare its F1."""
    info = json.loads((root / finetune.RESULTS).read_text(encoding="utf-8"))
    recorded = next(r for r in info["runs"] if (r["level"], r["seed"]) == ("head only", 0))
    got = finetune.rerun_point("head only", 0)
    return [check("F1 (head only, seed 0)", got["f1"], recorded["f1"], 0.01),
            check("trainable parameters (head only)", got["trainable"], recorded["trainable"], 0),
            check("runs in the sweep", len(info["runs"]), len(finetune.SEEDS) * len(finetune.LEVELS), 0)]


ARTIFACTS = [
    Artifact("10-finetune-depth", "10", "how much of the zoo word BERT to fine-tune on intruder tagging: "
             "head only, top block + head, full; 3 seeds", (finetune.RESULTS,), _build_depth, _verify_depth,
             needs=("bert-word-jargon",)),
]
