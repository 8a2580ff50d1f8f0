"""Fine-tuning the word-level BERT of :mod:`roadmap_lib.chapters.ch06_encoder_only.pretrain` on the Jargon File tasks.

The tasks (:mod:`roadmap_lib.tasks`) share their sentences: *intruder* (one word replaced by a
random word) and *acceptability* (two words swapped). Two heads on the same encoder: sentence
classification (is this sentence original, label 1, or corrupted, label 0?) from the ``[CLS]``
position, and token labelling (which words were changed?) from every position. :func:`finetune`
trains either head, starting from the pretrained encoder or from random weights of the same size (the baseline), and can distil from a teacher's
soft targets as DistilBERT does (:func:`roadmap_lib.objectives.distillation_loss`). Metrics: accuracy, and the F1 of the
"changed" class over words (:func:`roadmap_lib.metrics.token_f1`).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from roadmap_lib.chapters.ch06_encoder_only.pretrain import CONTEXT, PAD, WordVocab
from roadmap_lib.data import load_task
from roadmap_lib.measure import cpu_threads
from roadmap_lib.metrics import accuracy, token_f1
from roadmap_lib.models.bert import (
    BertConfig,
    BertEncoder,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from roadmap_lib.objectives import distillation_loss
from roadmap_lib.training import TrainConfig, train


def token_labels(n_words: int, *changed: int, context: int = CONTEXT) -> torch.Tensor:
    """Per-token targets (context,) for a sentence of ``n_words`` words: 1 at the ``changed``
    word indices, 0 at the other words, -100 (ignored) at ``[CLS]``, ``[SEP]`` and padding. Word
    ``i`` is token ``i + 1``; an index of -1 (an original sentence) marks nothing."""
    if not 0 < n_words <= context - 2:
        raise ValueError(f"n_words: expected 1..{context - 2}, got {n_words}")
    labels = torch.full((context,), -100, dtype=torch.long)
    labels[1 : n_words + 1] = 0
    for k in changed:
        if not -1 <= k < n_words:
            raise ValueError(f"changed: expected word indices in -1..{n_words - 1}, got {k}")
        if k >= 0:
            labels[k + 1] = 1
    return labels


TASKS = {"intruder": ("position",), "acceptability": ("swap_i", "swap_j")}


class TaskData:
    """One split of a word-level task (``"intruder"`` or ``"acceptability"``), encoded: ids (n, context),
    sentence labels (n,), token labels (n, context). ``limit`` keeps the first ``limit`` rows."""

    def __init__(self, vocab: WordVocab, task: str, split: str, limit: int | None = None):
        if task not in TASKS:
            raise ValueError(f"task: expected one of {sorted(TASKS)}, got {task!r}")
        rows = load_task(task, split)[:limit]
        self.task = task
        self.text = [r["text"] for r in rows]
        self.ids = torch.stack([vocab.encode(t) for t in self.text])
        self.labels = torch.tensor([int(r["label"]) for r in rows])
        self.token_labels = torch.stack([token_labels(len(t.split()), *(int(r[c]) for c in TASKS[task]))
                                         for t, r in zip(self.text, rows)])

    def __len__(self) -> int:
        return len(self.ids)

    def targets(self, kind: str) -> torch.Tensor:
        if kind not in ("sequence", "token"):
            raise ValueError(f"kind: expected 'sequence' or 'token', got {kind!r}")
        return self.labels if kind == "sequence" else self.token_labels


def make_model(kind: str, config: BertConfig, encoder: BertEncoder | None = None, seed: int = 0) -> nn.Module:
    """A fresh classifier of ``kind`` ("sequence" or "token"); its encoder copied from ``encoder``
    (pretrained) or left random (the baseline). Heads are random either way, drawn from ``seed``."""
    torch.manual_seed(seed)
    cls = {"sequence": BertForSequenceClassification, "token": BertForTokenClassification}.get(kind)
    if cls is None:
        raise ValueError(f"kind: expected 'sequence' or 'token', got {kind!r}")
    model = cls(config)
    if encoder is not None:
        model.bert.load_state_dict(copy.deepcopy(encoder.state_dict()))
    return model


def logits_of(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(ids, attention_mask=ids != PAD)


def finetune(model: nn.Module, data: TaskData, kind: str, *, steps: int = 200, lr: float = 1e-3,
             batch_size: int = 32, seed: int = 0, teacher: nn.Module | None = None, T: float = 2.0,
             alpha: float = 0.5, pos_weight: float = 5.0, stop_at: int | None = None) -> list[float]:
    """Train ``model`` on ``data`` for ``steps`` AdamW steps (one thread); return the loss per step.

    Token labelling weights the rare "changed" class by ``pos_weight``. With ``teacher``, the loss
    is :func:`distillation_loss` against the teacher's logits. ``stop_at`` stops after that many
    steps of the same schedule (a replay of the start of a recorded run).
    """
    targets = data.targets(kind)
    # token labels are ~5 % "changed": weight that class up so "never flag" is not a good answer
    weight = torch.tensor([1.0, pos_weight]) if kind == "token" else None
    if teacher is not None:
        teacher.eval()

    def get_batch(split, generator):
        rows = torch.randint(0, len(data), (batch_size,), generator=generator)
        return data.ids[rows], targets[rows]

    def loss_fn(m, ids, y):
        logits = logits_of(m, ids).reshape(-1, 2)
        if teacher is None:
            return F.cross_entropy(logits, y.reshape(-1), weight=weight, ignore_index=-100)
        with torch.no_grad():
            t = logits_of(teacher, ids).reshape(-1, 2)
        return distillation_loss(logits, t, y.reshape(-1), T, alpha, weight=weight)

    cfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=steps // 10, weight_decay=0.01, eval_interval=steps,
                      eval_batches=1, seed=seed, progress=False)
    with cpu_threads(1):
        result = train(model, get_batch, cfg, loss_fn=loss_fn, stop_at=stop_at)
    return [row["loss"] for row in result.log]


@torch.no_grad()
def predict(model: nn.Module, ids: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Arg-max predictions, (n,) for a sentence classifier or (n, seq) for a tagger."""
    model.eval()
    return torch.cat([logits_of(model, ids[i : i + batch_size]).argmax(-1) for i in range(0, len(ids), batch_size)])


def scores(model: nn.Module, data: TaskData, kind: str) -> dict[str, float]:
    """Sentence classifier: accuracy. Tagger: F1 of "changed" over words, and the sentence
    accuracy obtained by calling a sentence corrupted when any word is flagged."""
    pred = predict(model, data.ids)
    if kind == "sequence":
        return {"accuracy": accuracy(pred, data.labels)}
    gold = data.token_labels
    flagged = ((pred == 1) & (gold != -100)).any(1)
    return {"f1": token_f1(pred, gold), "accuracy": (flagged.long() == 1 - data.labels).float().mean().item()}


__all__ = [
    "TASKS",
    "TaskData",
    "finetune",
    "logits_of",
    "make_model",
    "predict",
    "scores",
    "token_labels",
]
