"""Chapter 11's shipped artifacts: the distilled student (``gpt-char-distilled``, which chapter 26
serves) with the size/quality table it comes from (``11_distillation.json``); and the chain-of-thought
results (``11-cot``: ``11_cot.json`` and the seed-0 scratchpad model)."""

from __future__ import annotations

import json
from pathlib import Path

from roadmap_lib.chapters.ch11_prompting_distillation import cot, distill
from roadmap_lib.zoo import Artifact, check, load_char_gpt


def _build(root: Path) -> None:
    record, model = distill.run()
    distill.save(record, model, root)


def _verify(root: Path):
    """Re-measures the shipped student's and the teacher's validation loss (a retrain of the nine
    students is half an hour on one thread; the unit tests check that a short one is seeded)."""
    model, vocab, info = load_char_gpt(distill.NAME, root / "zoo")
    record = json.loads((root / distill.RESULTS).read_text(encoding="utf-8"))
    data = distill.corpus(vocab)
    teacher, _ = distill.teacher()
    shipped = next(r for r in record["runs"] if r["method"] == "soft" and r["seed"] == info["seed"])
    got = distill.val_loss(model, data)
    return [check("student eval loss (nats/char)", got, info["eval"]["loss"], 2e-3),
            check("student eval loss = the table's row for its seed", got, shipped["val_loss"], 2e-3),
            check("teacher eval loss (nats/char)", distill.val_loss(teacher, data),
                  record["teacher"]["val_loss"], 2e-3)]


def _build_cot(root: Path) -> None:
    record, model = cot.run()
    cot.save(record, model, root)


def _verify_cot(root: Path):
    """Re-measures the shipped scratchpad model's greedy accuracy on the fixed test set, per
    length (decoding is deterministic: the numbers must match exactly)."""
    record = json.loads((root / cot.RESULTS).read_text(encoding="utf-8"))
    row = next(r for r in record["runs"] if r["cot"] and r["seed"] == record["kept_model_seed"])
    got = cot.accuracy_by_length(cot.load_model(root), cot.test_set())
    return [check(f"scratchpad accuracy, {n} bits", got[n], row["accuracy"][str(n)], 1e-9) for n in got]


ARTIFACTS = [
    Artifact(distill.NAME, "11", "character-level GPT student (2 layers, 64 dims) distilled from "
             "gpt-char-jargon with soft targets, and the size/quality table (scratch, soft, "
             "sequence-level distillation, 3 seeds)",
             (f"zoo/{distill.NAME}.safetensors", f"zoo/{distill.NAME}.json", distill.RESULTS),
             _build, _verify, needs=("gpt-char-jargon",)),
    Artifact("11-cot", "11", "chain of thought on the parity of 2-6 bits: a 2-layer 64-dim GPT trained "
             "to answer directly or with a scratchpad (3 seeds each), self-consistency, best-of-n "
             "with a verifier and a calculator tool loop; the seed-0 scratchpad model",
             (cot.RESULTS, cot.CHECKPOINT), _build_cot, _verify_cot),
]
