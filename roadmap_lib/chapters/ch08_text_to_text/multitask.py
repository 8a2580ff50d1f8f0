"""One text-to-text model, two tasks, told apart by a prefix (chapter 08).

    "translate English to Zetan: the farmer saw a stone" -> "... (Zetan, verb last)"
    "fix word order: the saw farmer a stone"             -> "the farmer saw a stone"

The second task reads the acceptability task's sentences (half of them with two words swapped) and
writes the original sentence; an original maps to itself, so copying the input already scores 50%
exact match and only the swapped half measures skill. Scores: corpus BLEU
(:func:`roadmap_lib.metrics.corpus_bleu`) for translation, exact match against the reference as
the word vocabulary sees it (:meth:`T2TVocab.normalized`) for word order.

The same recipe (steps, batch, schedule, seed) fine-tunes three initialisations: random
(``scratch``), span-corruption-pretrained (``span``), denoising-pretrained (``denoise``); with
``tasks=("fix",)`` it trains a single-task model on the same steps and the same examples of its
task (half the batch).
"""

from __future__ import annotations

from pathlib import Path

import torch

from roadmap_lib.chapters.ch08_text_to_text.common import (
    PREFIXES,
    SEED,
    T2TVocab,
    corpus_vocab,
    fit,
    generate,
    load,
    make_batch,
    new_model,
    original_of,
    save,
)
from roadmap_lib.data import load_task
from roadmap_lib.measure import cpu_threads
from roadmap_lib.metrics import corpus_bleu
from roadmap_lib.objectives import seq2seq_loss
from roadmap_lib.training import evaluate

INITS = ("scratch", "span", "denoise")
TASKS = ("translate", "fix")
SINGLE = (("translate",), ("fix",))  # the single-task baselines, trained from scratch
BATCH = 64
EVAL_ROWS = 200  # test rows per task behind the recorded scores
EVAL_BATCHES, EVAL_SEED = 10, 1
TRAIN = {"max_steps": 1200, "lr": 5e-3, "warmup_steps": 100, "min_lr_ratio": 0.1, "weight_decay": 0.01,
         "betas": (0.9, 0.98), "grad_clip": 1.0, "eval_interval": 100, "eval_batches": EVAL_BATCHES}


def task_rows(task: str, split: str) -> list[dict]:
    """``{"task", "input", "target", "swapped"}`` rows: the prefixed input text and the target text."""
    if task == "translate":
        return [{"task": task, "input": f"{PREFIXES[task]} {r['src']}", "target": r["tgt"], "swapped": False}
                for r in load_task("translation", split)]
    if task == "fix":
        return [{"task": task, "input": f"{PREFIXES[task]} {r['text']}", "target": original_of(r),
                 "swapped": int(r["swap_i"]) >= 0} for r in load_task("acceptability", split)]
    raise ValueError(f"task: expected one of {TASKS}, got {task!r}")


class MultitaskData:
    """Batches with an equal share of each task (``get_batch`` for :func:`roadmap_lib.training.train`)."""

    def __init__(self, vocab: T2TVocab, tasks: tuple[str, ...] = TASKS, batch_size: int = BATCH):
        if not tasks or any(t not in TASKS for t in tasks):
            raise ValueError(f"tasks: expected a non-empty subset of {TASKS}, got {tasks!r}")
        if batch_size % len(tasks):
            raise ValueError(f"batch_size: expected a multiple of {len(tasks)} tasks, got {batch_size}")
        self.vocab, self.tasks, self.batch_size = vocab, tasks, batch_size
        self.splits = {split: {t: [(vocab.encode(r["input"]), vocab.encode(r["target"]))
                                   for r in task_rows(t, split)] for t in tasks} for split in ("train", "val")}

    def get_batch(self, split: str, generator: torch.Generator | None = None):
        if split not in self.splits:
            raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
        pairs = []
        for t in self.tasks:
            data = self.splits[split][t]
            pairs += [data[i] for i in torch.randint(len(data), (self.batch_size // len(self.tasks),),
                                                      generator=generator).tolist()]
        return make_batch(pairs)


def scores(model, vocab: T2TVocab, n: int = EVAL_ROWS, split: str = "test", tasks: tuple[str, ...] = TASKS) -> dict:
    """Greedy outputs on the first ``n`` rows of each task: translation BLEU; for word order, BLEU
    against the (vocabulary-normalised) original and exact match in percent: overall, on swapped
    rows, on original rows."""
    out = {}
    if "translate" in tasks:
        rows = task_rows("translate", split)[:n]
        hyps = generate(model, vocab, [r["input"] for r in rows])
        out["bleu"] = corpus_bleu(hyps, [r["target"] for r in rows]).score
    if "fix" in tasks:
        rows = task_rows("fix", split)[:n]
        hyps = generate(model, vocab, [r["input"] for r in rows])
        refs = [vocab.normalized(r["target"]) for r in rows]
        out["fix_bleu"] = corpus_bleu(hyps, refs).score
        hits = [h == ref for h, ref in zip(hyps, refs)]
        out["exact_match"] = 100 * sum(hits) / len(hits)
        for key, want in (("exact_match_swapped", True), ("exact_match_original", False)):
            sub = [h for h, r in zip(hits, rows) if r["swapped"] == want]
            out[key] = 100 * sum(sub) / len(sub)
    return out


def copy_baseline(vocab: T2TVocab, n: int = EVAL_ROWS, split: str = "test") -> dict:
    """The word-order scores of writing the input back unchanged."""
    rows = task_rows("fix", split)[:n]
    hyps = [vocab.normalized(r["input"][len(PREFIXES["fix"]):]) for r in rows]
    refs = [vocab.normalized(r["target"]) for r in rows]
    return {"fix_bleu": corpus_bleu(hyps, refs).score,
            "exact_match": 100 * sum(h == ref for h, ref in zip(hyps, refs)) / len(rows)}


def batch_size(tasks: tuple[str, ...]) -> int:
    """``BATCH // 2`` examples per task and step: a single-task model sees exactly as many examples
    of its task, in as many updates, as the multitask model does."""
    return BATCH // len(TASKS) * len(tasks)


def name_of(init: str, tasks: tuple[str, ...] = TASKS) -> str:
    if init not in INITS:
        raise ValueError(f"init: expected one of {INITS}, got {init!r}")
    return f"t2t-multi-{init}" if tuple(tasks) == TASKS else f"t2t-{'-'.join(tasks)}-{init}"


def initial_model(init: str, zoo: Path | None = None):
    """A fresh model (``scratch``) or a copy of a shipped pretrained one, and the corpus vocabulary."""
    if init == "scratch":
        vocab = corpus_vocab()
        return new_model(len(vocab)), vocab
    model, vocab, _ = load(f"t2t-{init}", zoo)
    return model.train(), vocab


def build(init: str, tasks: tuple[str, ...] = TASKS, zoo: Path | None = None, progress: bool = True,
          max_steps: int | None = None) -> dict:
    """Fine-tune ``init`` on ``tasks`` (one CPU thread, seeded), save, and return the JSON record."""
    name = name_of(init, tasks)
    with cpu_threads(1):
        model, vocab = initial_model(init)  # the shipped pretrained model (data/zoo)
        data = MultitaskData(vocab, tuple(tasks), batch_size(tasks))
        summary, val_loss = fit(model, data.get_batch, TRAIN, max_steps=max_steps, progress=progress,
                                eval_batches=EVAL_BATCHES, eval_seed=EVAL_SEED)
        test = scores(model, vocab, tasks=tuple(tasks))
    record = {
        "name": name, "init": init, "tasks": list(tasks),
        "description": f"word-level T5 ({init} initialisation) fine-tuned on {' + '.join(tasks)} with task prefixes",
        "command": f"python -m roadmap_lib build {name}", "seed": SEED,
        "model_config": model.config.to_dict(), "train_config": TRAIN, "batch_size": batch_size(tasks),
        **summary, "val_loss": val_loss,
        "eval": {"batches": EVAL_BATCHES, "seed": EVAL_SEED, "test_rows": EVAL_ROWS}, "test": test,
        "torch": torch.__version__,
    }
    save(model, vocab, record, name, zoo)
    return record


def verify(init: str, tasks: tuple[str, ...] = TASKS, zoo: Path | None = None) -> dict:
    """Recomputed validation loss and test scores next to the recorded ones."""
    model, vocab, record = load(name_of(init, tasks), zoo)
    with cpu_threads(1):
        data = MultitaskData(vocab, tuple(record["tasks"]), record["batch_size"])
        got = {"val_loss": evaluate(model, data.get_batch, seq2seq_loss, batches=record["eval"]["batches"],
                                    seed=record["eval"]["seed"]),
               **scores(model, vocab, record["eval"]["test_rows"], tasks=tuple(record["tasks"]))}
    return {"got": got, "recorded": {"val_loss": record["val_loss"], **record["test"]}}


__all__ = ["BATCH", "EVAL_ROWS", "INITS", "SINGLE", "TASKS", "TRAIN", "MultitaskData", "batch_size", "build",
           "copy_baseline", "initial_model", "name_of", "original_of", "scores", "task_rows", "verify"]
