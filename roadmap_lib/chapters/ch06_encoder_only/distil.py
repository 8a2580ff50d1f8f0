"""Chapter 06's fine-tuned tagger, shipped, and distillation in miniature over three seeds.

The *teacher* is the pretrained tagger of the fine-tuning sweep's cell (token head, 2,000 labelled
sentences, seed 0), trained with fused norms and activations and the written-out attention, so that
its dropout masks are the sweep's (:func:`roadmap_lib.chapters.ch06_encoder_only.study.fast_path`).
Its weights ship in half precision; the chapter loads them (and replays the first
``REPLAY_STEPS`` steps of the fine-tuning against the recorded losses) instead of training for
600 steps. Everything below starts from the *shipped* weights, read back in full precision.

Two 1-layer *students* start from the teacher's embeddings, first layer and head (DistilBERT's
initialisation from every other layer): one is fine-tuned on the labels alone, the other on
:func:`roadmap_lib.objectives.distillation_loss` with ``T`` and ``ALPHA``; ``STUDENT_STEPS`` steps
on the same 2,000 sentences, once per seed in ``SEEDS`` (the seed draws the batches and dropout).

Rebuild (about 3 minutes on one core)::

    python -m roadmap_lib build 06-distil     # data/06_distil.json and data/06_tagger.safetensors
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch

from roadmap_lib.chapters.ch06_encoder_only.finetune import TaskData, finetune, make_model, scores
from roadmap_lib.chapters.ch06_encoder_only.pretrain import load
from roadmap_lib.chapters.ch06_encoder_only.study import RECIPE, TASK, fast_path, train_one
from roadmap_lib.checkpoint import load_model, read_model_metadata, save_model
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import count_parameters, cpu_threads
from roadmap_lib.models.bert import BertConfig, BertForTokenClassification

RESULTS = "06_distil.json"
TEACHER_FILE = "06_tagger.safetensors"
LIVE_N = 2000  # labelled sentences: the sweep's cell the teacher repeats
REPLAY_STEPS = 50
STUDENT_STEPS = 300
SEEDS = (0, 1, 2)
T, ALPHA = 2.0, 0.5
STUDENTS = ("student alone", "student distilled")


def train_teacher(encoder_model, vocab, *, stop_at: int | None = None):
    """The sweep's cell (token head, pretrained, ``LIVE_N`` labels, seed 0) with fused norms and
    activations, which keep the sweep's dropout masks; ``(model, loss per step)``."""
    return train_one("token", "pretrained", LIVE_N, encoder_model=encoder_model, vocab=vocab, fused_ops=True,
                     stop_at=stop_at)


def save_teacher(model: BertForTokenClassification, path: Path) -> None:
    """The tagger's weights in half precision, its configuration in the header."""
    save_model(copy.deepcopy(model).half(), path, config=model.config.to_dict())


def load_teacher(path: Path | None = None) -> BertForTokenClassification:
    """The shipped tagger, in full precision, eval mode, on the fast path (it only scores and teaches)."""
    from roadmap_lib import data_path

    path = data_path(TEACHER_FILE) if path is None else Path(path)
    config, _ = read_model_metadata(path)
    model = BertForTokenClassification(BertConfig(**config))
    load_model(model, path)
    return fast_path(model.eval())


def train_student(teacher: BertForTokenClassification, train_set: TaskData, seed: int,
                  distil: bool) -> BertForTokenClassification:
    """A 1-layer student from the teacher's embeddings, first layer and head, fine-tuned for
    ``STUDENT_STEPS`` on the labels (``distil=False``) or on the distillation loss."""
    config = BertConfig(**{**teacher.config.to_dict(), "n_layers": 1})
    student = fast_path(make_model("token", config, None, seed=0), attention=False)
    student.load_state_dict({k: v for k, v in teacher.state_dict().items() if not k.startswith("bert.blocks.1.")})
    with cpu_threads(1):
        finetune(student, train_set, "token", steps=STUDENT_STEPS, lr=RECIPE["lr"], seed=seed,
                 teacher=teacher if distil else None, T=T, alpha=ALPHA)
    return fast_path(student)


def build(root: Path, progress: bool = True) -> dict:
    """Train the teacher, ship it, and run the students on every seed; return the record."""
    start = time.perf_counter()
    encoder_model, vocab, _ = load()
    teacher, losses = train_teacher(encoder_model, vocab)
    teacher_seconds = round(time.perf_counter() - start, 1)
    save_teacher(teacher, root / TEACHER_FILE)  # root is the zoo's staging folder
    teacher = load_teacher(root / TEACHER_FILE)  # everything below uses the weights as shipped
    train_set, test_set = TaskData(vocab, TASK, "train", limit=LIVE_N), TaskData(vocab, TASK, "test")
    with cpu_threads(1):
        teacher_scores = scores(teacher, test_set, "token")
    runs = []
    for seed in SEEDS:
        for name in STUDENTS:
            student = train_student(teacher, train_set, seed, distil=name == "student distilled")
            with cpu_threads(1):
                runs.append({"seed": seed, "student": name, **scores(student, test_set, "token")})
            if progress:
                print(runs[-1], f"{time.perf_counter() - start:.0f} s", flush=True)
    record = {
        "description": "chapter 06's tagger (pretrained encoder, 2,000 labels, seed 0; weights shipped in fp16) "
                       "and 1-layer students fine-tuned on labels alone or distilled from it, per seed",
        "command": "python -m roadmap_lib build 06-distil",
        "recipe": RECIPE, "n_train": LIVE_N, "task": TASK, "split": "test",
        "teacher": {"file": TEACHER_FILE, "parameters": count_parameters(teacher), **teacher_scores,
                    "first_losses": losses[:REPLAY_STEPS], "final_loss": losses[-1]},
        "students": {"steps": STUDENT_STEPS, "T": T, "alpha": ALPHA, "seeds": list(SEEDS),
                     "parameters": count_parameters(student), "runs": runs},
        "seconds": {"teacher": teacher_seconds,
                    "students": round(time.perf_counter() - start - teacher_seconds, 1)},
        "torch": torch.__version__,
    }
    atomic_write_text(root / RESULTS, json.dumps(record, indent=1) + "\n")
    return record


def results(root: Path | None = None) -> dict:
    from roadmap_lib import data_path

    path = data_path(RESULTS) if root is None else Path(root) / RESULTS
    return json.loads(path.read_text(encoding="utf-8"))


def student_f1(record: dict) -> dict[str, list[float]]:
    """``{student: [F1 per seed, in SEEDS order]}`` from a record."""
    runs = record["students"]["runs"]
    return {name: [next(r["f1"] for r in runs if (r["student"], r["seed"]) == (name, s))
                   for s in record["students"]["seeds"]] for name in STUDENTS}
