"""Chapter 05's shipped artifact: the English -> Zetan Transformer."""

from __future__ import annotations

import json
from pathlib import Path

from roadmap_lib.chapters.ch05_encoder_decoder import translation
from roadmap_lib.zoo import Artifact, check


def _build(root: Path) -> None:
    translation.build(zoo=root / "zoo")


def _verify(root: Path):
    record = json.loads((root / "zoo" / f"{translation.NAME}.json").read_text(encoding="utf-8"))
    got = translation.verify(root / "zoo")
    return [check("validation loss (nats/word)", got["val_loss"], record["val_loss"], 1e-3),
            check("test BLEU, greedy", got["test_bleu_greedy"], record["test_bleu_greedy"], 0.5),
            check("test BLEU, beam", got["test_bleu_beam"], record["test_bleu_beam"], 0.5)]


ARTIFACTS = [
    Artifact(translation.NAME, "05", "the original Transformer (post-norm, sinusoidal) trained on "
             "English -> Zetan", (f"zoo/{translation.NAME}.safetensors",
                                   f"zoo/{translation.NAME}.json"),
             _build, _verify, needs=("tasks",)),
]
