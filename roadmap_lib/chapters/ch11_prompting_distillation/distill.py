"""Knowledge distillation of the zoo's character GPT (``gpt-char-jargon``) into a 7x smaller student.

Three ways to train one student architecture (2 layers, 64 dims, 113k parameters against the
teacher's 819k) for the same number of steps on the Jargon File:

- ``scratch``: next-character cross-entropy on the corpus (no teacher);
- ``soft``: word-level distillation (Hinton et al., 2015), the loss
  :func:`roadmap_lib.objectives.lm_distillation_loss` (soft targets at temperature ``T`` mixed
  with the hard next character) on the same corpus batches;
- ``sequence``: sequence-level distillation (Kim & Rush, 2016), cross-entropy on text the teacher
  wrote: each training row is a real prefix followed by the teacher's greedy continuation.

Each student is scored by its loss on the real validation text (the protocol of chapter 07's
``gpt-char-jargon`` record: 40 batches of 12 windows, seed 1), the teacher too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from roadmap_lib.checkpoint import save_model
from roadmap_lib.data import CharLMData
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.generation import greedy
from roadmap_lib.measure import count_parameters, cpu_threads
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.objectives import lm_distillation_loss, lm_loss
from roadmap_lib.training import TrainConfig, evaluate, train
from roadmap_lib.zoo import load_char_gpt

TEACHER = "gpt-char-jargon"
NAME = "gpt-char-distilled"
RESULTS = "11_distillation.json"
METHODS = ("scratch", "soft", "sequence")
STUDENT = {"n_layers": 2, "n_heads": 4, "d_model": 64, "dropout": 0.0}
CONTEXT, BATCH = 64, 16
T, ALPHA = 2.0, 0.5
TRAIN = {"max_steps": 400, "lr": 3e-3, "min_lr_ratio": 0.1, "warmup_steps": 30, "weight_decay": 0.1,
             "betas": (0.9, 0.99), "grad_clip": 1.0, "eval_interval": 400, "eval_batches": 4}
#: sequence-level data: POOL rows, each PREFIX real characters then the teacher's greedy rest
POOL, PREFIX, POOL_SEED = 512, 16, 99
EVAL_BATCHES, EVAL_SEED = 40, 1  # chapter 07's protocol


def teacher(sdpa: bool = True) -> tuple[GPT, object]:
    """``(teacher in eval mode, CharVocab)``; ``sdpa`` swaps in PyTorch's fused attention (same
    numbers within 1e-5, tests/test_attention_backends.py), which is faster on a CPU."""
    model, vocab, _ = load_char_gpt(TEACHER)
    if sdpa:
        fast = GPT(GPTConfig(**{**model.config.to_dict(), "attention_backend": "sdpa"}))
        fast.load_state_dict(model.state_dict())
        model = fast.eval()
    return model, vocab


def corpus(vocab) -> CharLMData:
    # legacy_starts: gpt-char-distilled was trained before get_batch's fix (data.LEGACY_SAMPLER_ARTIFACTS)
    return CharLMData(context=CONTEXT, batch_size=BATCH, vocab=vocab, legacy_starts=True)


def student(vocab_size: int, seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, context_length=CONTEXT, attention_backend="sdpa",
                         **STUDENT))


def _real_batches(data: CharLMData):
    return lambda split, g: data.get_batch(split, g, batch_size=None if split == "train" else 12)


@torch.no_grad()
def teacher_pool(model: GPT, data: CharLMData, rows: int = POOL, prefix: int = PREFIX,
                 seed: int = POOL_SEED, chunk: int = 128) -> torch.Tensor:
    """``(rows, CONTEXT + 1)`` ids: ``prefix`` real training characters, then the teacher's greedy
    continuation (Kim & Rush's "train on the teacher's beam/greedy output")."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, rows, chunk):
        x, _ = data.get_batch("train", g, batch_size=min(chunk, rows - start))
        out.append(greedy(model, x[:, :prefix], CONTEXT + 1 - prefix, use_cache=True))
    return torch.cat(out)


def _pool_batches(pool: torch.Tensor, data: CharLMData, prefix: int = PREFIX):
    """Training batches from the teacher's text (loss on the generated part only); validation on
    the real text, as for every method."""
    def get_batch(split, g):
        if split != "train":
            return data.get_batch(split, g, batch_size=12)
        rows = pool[torch.randint(0, len(pool), (BATCH,), generator=g)]
        x, y = rows[:, :-1], rows[:, 1:].clone()
        y[:, :prefix - 1] = -100  # the real prefix is context, not the teacher's output
        return x, y
    return get_batch


def train_student(method: str, seed: int, teacher_model: GPT, data: CharLMData,
                  pool: torch.Tensor | None = None, *, steps: int | None = None,
                  progress: bool = False) -> tuple[GPT, float]:
    """``(student in eval mode, seconds)`` trained by ``method`` (one of :data:`METHODS`)."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if method == "sequence" and pool is None:
        raise ValueError("pool: sequence-level distillation needs the teacher's text (teacher_pool)")
    model = student(len(data.vocab), seed)
    cfg = dict(TRAIN, seed=seed, progress=progress)
    if steps is not None:
        cfg.update(max_steps=steps, eval_interval=steps, warmup_steps=min(30, steps // 4))
    loss_fn = lm_distillation_loss(teacher_model, T=T, alpha=ALPHA) if method == "soft" else lm_loss
    batches = _pool_batches(pool, data) if method == "sequence" else _real_batches(data)
    with cpu_threads(1):
        result = train(model, batches, TrainConfig(**cfg), loss_fn=loss_fn)
    return model.eval(), result.seconds


def val_loss(model: GPT, data: CharLMData) -> float:
    """Loss on the real validation text, chapter 07's protocol."""
    with cpu_threads(1):
        return evaluate(model, _real_batches(data), batches=EVAL_BATCHES, seed=EVAL_SEED)


def run(seeds: Sequence[int] = (0, 1, 2), progress: bool = True, steps: int | None = None,
        pool_rows: int = POOL) -> tuple[dict, GPT]:
    """The table (teacher, and each method x seed) and the ``soft`` student of the first seed
    (``steps`` and ``pool_rows`` shorten it for smoke tests; the shipped build uses the defaults)."""
    t_model, vocab = teacher()
    data = corpus(vocab)
    start = time.perf_counter()
    with cpu_threads(1):
        pool = teacher_pool(t_model, data, rows=pool_rows)
    pool_seconds = time.perf_counter() - start
    runs, shipped = [], None
    for seed in seeds:
        for method in METHODS:
            model, seconds = train_student(method, seed, t_model, data, pool, steps=steps,
                                           progress=progress)
            runs.append({"method": method, "seed": seed, "val_loss": val_loss(model, data),
                             "train_seconds": round(seconds, 1)})
            if method == "soft" and shipped is None:
                shipped = model
    record = {
        "teacher": {"name": TEACHER, "params": count_parameters(t_model), "val_loss": val_loss(t_model, data)},
        "student": {"config": STUDENT, "params": count_parameters(shipped)},
        "context": CONTEXT, "batch": BATCH, "T": T, "alpha": ALPHA, "train": TRAIN, "pool": {"rows": POOL, "prefix": PREFIX,
        "seed": POOL_SEED, "seconds": round(pool_seconds, 1), "sample": vocab.decode(pool[0].tolist())},
        "eval": {"batches": EVAL_BATCHES, "batch_size": 12, "seed": EVAL_SEED}, "runs": runs,
        "command": f"python -m roadmap_lib build {NAME}", "torch": torch.__version__}
    return record, shipped


def save(record: dict, model: GPT, root: Path) -> None:
    """Write ``root/11_distillation.json`` and the zoo checkpoint ``root/zoo/gpt-char-distilled.*``
    (the ``soft`` student of the first seed, in the format :func:`roadmap_lib.zoo.load_char_gpt` reads)."""
    _, vocab = teacher(sdpa=False)
    data = corpus(vocab)
    config = {**model.config.to_dict(), "attention_backend": "math"}  # the zoo's default backend
    (root / "zoo").mkdir(parents=True, exist_ok=True)
    save_model(model, root / "zoo" / f"{NAME}.safetensors", config=config, extra={"vocab": vocab.chars})
    soft0 = next(r for r in record["runs"] if r["method"] == "soft")
    info = {"name": NAME, "description": f"character-level GPT student ({STUDENT['n_layers']} layers, "
                f"{STUDENT['d_model']} dims) distilled from {TEACHER} with soft targets (T={T})",
                "model_config": config, "vocab": vocab.chars, "teacher": TEACHER, "seed": soft0["seed"],
                "eval": {"split": "val", "batches": EVAL_BATCHES, "batch_size": 12, "seed": EVAL_SEED,
                          "loss": val_loss(model, data)},
                "train_seconds": sum(r["train_seconds"] for r in record["runs"]),
                "command": f"python -m roadmap_lib build {NAME}", "torch": torch.__version__}
    atomic_write_text(root / "zoo" / f"{NAME}.json", json.dumps(info, indent=1) + "\n")
    atomic_write_text(root / RESULTS, json.dumps(record, indent=1) + "\n")


def table(record: dict) -> list[dict]:
    """One row per model: teacher, then each method with its mean, spread and per-seed losses."""
    rows = [{"model": f"teacher ({record['teacher']['name']})", "params": record["teacher"]["params"],
                 "mean": record["teacher"]["val_loss"], "spread": 0.0, "losses": [record["teacher"]["val_loss"]]}]
    for method in METHODS:
        losses = [r["val_loss"] for r in record["runs"] if r["method"] == method]
        rows.append({"model": f"student, {method}", "params": record["student"]["params"],
                         "mean": sum(losses) / len(losses), "spread": max(losses) - min(losses), "losses": losses})
    return rows


__all__ = ["ALPHA", "METHODS", "NAME", "RESULTS", "T", "corpus", "run", "save", "student", "table",
           "teacher", "teacher_pool", "train_student", "val_loss"]
