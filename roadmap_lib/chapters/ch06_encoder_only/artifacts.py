"""Chapter 06's shipped artifacts: the word-level BERT and the fine-tuning sweep's results."""

from __future__ import annotations

import json
from pathlib import Path

from roadmap_lib.chapters.ch06_encoder_only import pretrain, study
from roadmap_lib.zoo import Artifact, check


def _build_bert(root: Path) -> None:
    pretrain.build(root / "zoo")


def _verify_bert(root: Path):
    got, recorded = pretrain.verify(root / "zoo")
    return [check("eval masked-LM loss (nats)", got, recorded, 2e-3)]


def _build_sweep(root: Path) -> None:
    study.build(root / study.RESULTS, jobs=2)


def _verify_sweep(root: Path):
    """Re-run the sweep's first cell (seed 0, the fewest labels, sentence classifier from the
    pretrained encoder, about 30 s on one core) and compare with its recorded test accuracy."""
    info = json.loads((root / study.RESULTS).read_text(encoding="utf-8"))
    recorded = next(r for r in info["runs"] if (r["seed"], r["n_train"], r["kind"], r["start"])
                    == (0, study.SIZES[0], "sequence", "pretrained"))
    got, _ = study.run_one("sequence", "pretrained", study.SIZES[0], recipe={"seed": 0})
    return [check(f"accuracy (seed 0, {study.SIZES[0]} labels, sequence, pretrained)",
                  got["accuracy"], recorded["accuracy"], 0.01),
            check("runs in the sweep", len(info["runs"]),
                  len(study.SEEDS) * len(study.SIZES) * len(study.KINDS) * len(study.STARTS), 0)]


ARTIFACTS = [
    Artifact("bert-word-jargon", "06", "word-level BERT (2 layers, 4 heads, 128 dims) pretrained "
             "with masked LM on Jargon File sentences",
             ("zoo/bert-word-jargon.safetensors", "zoo/bert-word-jargon.json"), _build_bert,
             _verify_bert),
    Artifact("06-finetune", "06", "fine-tuning sweep on the intruder task: pretrained vs scratch "
             "encoder, sentence and token heads, 4 label budgets, 3 seeds",
             (study.RESULTS,), _build_sweep, _verify_sweep, needs=("bert-word-jargon",)),
]
