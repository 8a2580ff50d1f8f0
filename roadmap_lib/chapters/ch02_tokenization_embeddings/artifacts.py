"""Chapter 02's shipped artifact: the three 4k-token tokenizers and the fertility table."""

from __future__ import annotations

import json
from pathlib import Path

from roadmap_lib.chapters.ch02_tokenization_embeddings import study
from roadmap_lib.tokenizers import load as load_tokenizer
from roadmap_lib.zoo import Artifact, check

KINDS = ("bpe", "wordpiece", "unigram")
SIZE = str(study.SHIPPED_SIZE)


def _build(root: Path) -> None:
    study.build(root / "tokenizers")


def _verify(root: Path):
    """Re-measure each shipped tokenizer's fertility (tokens per word) on the held-out text."""
    recorded = json.loads((root / "tokenizers" / "fertility.json").read_text(encoding="utf-8"))
    _, held = study.corpus_split()
    checks = []
    for kind in KINDS:
        tok = load_tokenizer(root / "tokenizers" / f"{kind}_{study.SHIPPED_SIZE // 1000}k.json")
        got = study.fertility(tok, held)
        want = recorded["fertility"][kind][SIZE]
        checks.append(check(f"{kind} {SIZE}: held-out tokens", got["tokens"], want["tokens"], 0))
        checks.append(check(f"{kind} {SIZE}: fertility", got["fertility"], want["fertility"], 1e-12))
    return checks


ARTIFACTS = [
    Artifact("tokenizers", "02", "byte-level BPE, WordPiece and Unigram tokenizers (4,000 tokens) "
             "trained on the Jargon File, and the fertility table of every size",
             tuple(f"tokenizers/{k}_{study.SHIPPED_SIZE // 1000}k.json" for k in KINDS)
             + ("tokenizers/fertility.json",), _build, _verify),
]
