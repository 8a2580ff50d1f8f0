"""Chapter 25's shipped artifacts.

- ``25-parallel-sphinx``: the parallel sample (data/25_parallel_sphinx.json), extracted from the
  installed Sphinx's translation catalogues; verify re-extracts it and compares.
- ``25-transfer``: the cross-lingual transfer study (data/25_transfer.json), 3 seeds of 12
  classifiers and 11 tokenizers each, a few minutes on one thread; verify re-runs seed 0.
- ``25-induction-gpt``: the 2-layer GPT trained on repeated random sequences that the
  interpretability section opens up (data/zoo/25-induction-gpt.*); verify re-measures its loss.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import induction
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import multilingual_study as S
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads
from roadmap_lib.zoo import Artifact, check

TRANSFER = "25_transfer.json"
SEEDS = (0, 1, 2)


def _build_sample(root: Path) -> None:
    S.build_sample(root / S.FILE)


def _verify_sample(root: Path):
    import sphinx

    from roadmap_lib.multilingual import parallel_sample

    doc = json.loads((root / S.FILE).read_text(encoding="utf-8"))
    fresh = parallel_sample(S.LANGUAGES)
    same = float(fresh == doc["messages"])
    return [check("messages in the sample", len(fresh), len(doc["messages"]), 0),
            check(f"identical to a fresh extraction from Sphinx {sphinx.__version__} "
                  f"(recorded {doc['sphinx_version']})", same, 1.0, 0)]


def _sample_in(root: Path) -> list[dict]:
    """The parallel sample from ``root`` (verify) or, while building in a staging folder, data/."""
    from roadmap_lib import data_path

    return S.load_sample(root / S.FILE if (root / S.FILE).is_file() else data_path(S.FILE))


def _build_transfer(root: Path) -> None:
    sample = _sample_in(root)
    with cpu_threads(1):
        start = time.perf_counter()
        study = S.transfer_study(sample, SEEDS)
        seconds = time.perf_counter() - start
    info = {"name": "25-transfer",
            "description": "which part of Sphinx (builders, cmd, ext, domains) a message comes from: "
            "bag-of-subwords classifiers (32-dim mean embedding + linear, 150 full-batch Adam steps) "
            f"trained on English, tested in {len(S.ALL)} languages; byte-level BPEs of "
            f"{S.VOCAB} tokens trained on each split's training messages; 3 seeds (split and init)",
            "languages": S.ALL, "classes": S.CLASSES, **study, "seconds": round(seconds, 1),
            "command": "python -m roadmap_lib build 25-transfer", "torch": torch.__version__}
    atomic_write_text(root / TRANSFER, json.dumps(info, indent=1) + "\n")


def transfer_results(root: Path | None = None) -> dict:
    from roadmap_lib import DATA_DIR
    return json.loads(((root or DATA_DIR) / TRANSFER).read_text(encoding="utf-8"))


def _verify_transfer(root: Path):
    """Re-run seed 0 (tokenizers and 12 classifiers, under a minute on one thread)."""
    info = transfer_results(root)
    with cpu_threads(1):
        got = S.transfer_study(_sample_in(root), (0,))
    checks = []
    for setting in ("shared", "separate"):
        for lang in ("en", "fr", "ja"):
            checks.append(check(f"{setting}, seed 0, accuracy in {lang}", got["accuracy"][setting][0][lang],
                                info["accuracy"][setting][0][lang], 1e-6))
    return checks


def _build_induction(root: Path) -> None:
    with cpu_threads(1):
        induction.build(root / "zoo")


def _verify_induction(root: Path):
    model, record = induction.load(root / "zoo")
    return [check("second-half loss (nats/token)", induction.second_half_loss(model),
                  record["second_half_loss"], 1e-6)]


ARTIFACTS = [
    Artifact("25-parallel-sphinx", "25", "parallel sample: Sphinx's UI messages in English and 9 "
             "translations (BSD-2-Clause), format codes stripped", (S.FILE,), _build_sample, _verify_sample),
    Artifact("25-transfer", "25", "cross-lingual transfer of a bag-of-subwords classifier, shared vs "
             "separate tokenizers, 3 seeds", (TRANSFER,), _build_transfer, _verify_transfer,
             needs=("25-parallel-sphinx",)),
    Artifact("25-induction-gpt", "25", "2-layer GPT trained to copy repeated random sequences (induction)",
             (f"zoo/{induction.NAME}.safetensors", f"zoo/{induction.NAME}.json"), _build_induction,
             _verify_induction, seed=induction.SEED),
]
