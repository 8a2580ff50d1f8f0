"""Chapter 02's shipped artifacts: the three 4k-token tokenizers and the fertility table; the
characters-versus-BPE comparison (3 seeds)."""

from __future__ import annotations

import json
from pathlib import Path

from roadmap_lib.chapters.ch02_tokenization_embeddings import study, units
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


#: The same seed gives the same bits per character on one machine; across CPUs float rounding
#: differs in the last digits and 400 steps amplify it a little.
UNITS_TOL = 0.01


def _verify_units(root: Path):
    """Re-train the short BPE run (400 steps, seed 0) and compare its held-out bpc."""
    import torch

    info = units.load_results(root / units.RESULTS_FILE)
    train, held = study.corpus_split()
    held = held[:units.HELD_CHARS]
    bpe = units.tokenizers(train)["bpe"]
    _, _, curve = units.train_and_score(
        bpe, torch.tensor(bpe.encode(train[:units.SHORT_TRAIN_CHARS])),
        torch.tensor(bpe.encode(held)), len(held), context=units.BPE_CONTEXT,
        steps=units.SHORT_STEPS, seed=0)
    want = info["short_400_steps_context_16_seed_0"]["bpe"]
    return [check("BPE 400 steps seed 0 held-out bpc", curve[-1][1], want, UNITS_TOL)]


ARTIFACTS = [
    Artifact("tokenizers", "02", "byte-level BPE, WordPiece and Unigram tokenizers (4,000 tokens) "
             "trained on the Jargon File, and the fertility table of every size",
             tuple(f"tokenizers/{k}_{study.SHIPPED_SIZE // 1000}k.json" for k in KINDS)
             + ("tokenizers/fertility.json",), _build, _verify),
    Artifact("02-units", "02", "held-out bits per character of chapter 02's TinyLM on characters "
             "and on BPE tokens at equal characters of context, 3 seeds", (units.RESULTS_FILE,),
             units.write, _verify_units),
]
