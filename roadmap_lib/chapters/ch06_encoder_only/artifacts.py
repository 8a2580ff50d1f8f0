"""Chapter 06's shipped artifacts: the word-level BERT, the fine-tuning sweep's results, and the
fine-tuned tagger with the distillation runs that start from it."""

from __future__ import annotations

import json
from pathlib import Path

from roadmap_lib.chapters.ch06_encoder_only import distil, pretrain, study
from roadmap_lib.chapters.ch06_encoder_only.finetune import TaskData, scores
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


def _build_distil(root: Path) -> None:
    distil.build(root)


#: A replay of the first steps lands on the recorded losses to about 1e-6 on one machine; another
#: CPU's kernels round differently in the last digits.
REPLAY_TOL = 1e-3


def _verify_distil(root: Path):
    """Replay the tagger's first fine-tuning steps, score the shipped weights, and re-train one
    student (seed 0, labels alone): about 20 s on one core. ``build`` re-runs everything."""
    record = distil.results(root)
    encoder_model, vocab, _ = pretrain.load()
    _, losses = distil.train_teacher(encoder_model, vocab, stop_at=distil.REPLAY_STEPS)
    recorded = record["teacher"]["first_losses"]
    teacher = distil.load_teacher(root / distil.TEACHER_FILE)
    test_set = TaskData(vocab, distil.TASK, "test")
    got = scores(teacher, test_set, "token")
    train_set = TaskData(vocab, distil.TASK, "train", limit=distil.LIVE_N)
    student = distil.train_student(teacher, train_set, 0, distil=False)
    want = distil.student_f1(record)["student alone"][0]
    return [check("tagger: steps replayed", len(losses), len(recorded), 0),
            check("tagger: largest loss difference over the replayed steps",
                  max(abs(a - b) for a, b in zip(losses, recorded)), 0.0, REPLAY_TOL),
            check("tagger (shipped weights): test F1", got["f1"], record["teacher"]["f1"], 1e-4),
            check("student alone, seed 0: test F1", scores(student, test_set, "token")["f1"], want, 0.01)]


ARTIFACTS = [
    Artifact("bert-word-jargon", "06", "word-level BERT (2 layers, 4 heads, 128 dims) pretrained "
             "with masked LM on Jargon File sentences",
             ("zoo/bert-word-jargon.safetensors", "zoo/bert-word-jargon.json"), _build_bert,
             _verify_bert),
    Artifact("06-finetune", "06", "fine-tuning sweep on the intruder task: pretrained vs scratch "
             "encoder, sentence and token heads, 4 label budgets, 3 seeds",
             (study.RESULTS,), _build_sweep, _verify_sweep, needs=("bert-word-jargon",)),
    Artifact("06-distil", "06", "the pretrained tagger fine-tuned on 2,000 labels (fp16 weights) and 1-layer "
             "students trained on labels alone or distilled from it, 3 seeds",
             (distil.RESULTS, distil.TEACHER_FILE), _build_distil, _verify_distil, needs=("bert-word-jargon",)),
]
