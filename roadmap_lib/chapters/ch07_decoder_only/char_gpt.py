"""Chapter 07's character-level GPT recipes (the zoo's ``gpt-char-jargon``).

Each entry is a recipe (model config, data, training config, seed). ``python -m roadmap_lib build
NAME`` trains it and writes ``data/zoo/NAME.safetensors`` (weights, config in the header) and
``data/zoo/NAME.json`` (config, vocabulary, recorded evaluation loss, training log, command).
``load(NAME)`` gives the model back; ``verify(NAME)`` recomputes the evaluation loss, which
``tests/test_artifacts.py`` compares with the recorded one.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from roadmap_lib import DATA_DIR
from roadmap_lib.checkpoint import save_model
from roadmap_lib.data import CharLMData, CharVocab
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.training import TrainConfig, evaluate, train
from roadmap_lib.zoo import load_char_gpt

EVAL_BATCHES = 40
EVAL_SEED = 1


@dataclass
class ZooEntry:
    description: str
    model: str  # "gpt"
    model_config: dict
    train_config: dict
    context: int
    batch_size: int
    corpus: str = "jargon.txt"
    seed: int = 0
    chapters: list[str] = field(default_factory=list)


ENTRIES = {
    "gpt-char-jargon": ZooEntry(
        description="character-level GPT (GPT-2 architecture, 4 layers, 4 heads, 128 dims, "
                    "context 64) trained on the Jargon File",
        model="gpt",
        model_config=dict(n_layers=4, n_heads=4, d_model=128, dropout=0.0),
        train_config=dict(max_steps=2500, lr=3e-3, min_lr_ratio=0.1, warmup_steps=100,
                          weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0, eval_interval=100,
                          eval_batches=EVAL_BATCHES),
        context=64, batch_size=16, chapters=["07"],
    ),
}


def zoo_dir() -> Path:
    return DATA_DIR / "zoo"


def _check_name(name: str) -> ZooEntry:
    if name not in ENTRIES:
        raise ValueError(f"name: expected one of {sorted(ENTRIES)}, got {name!r}")
    return ENTRIES[name]


def _data(entry: ZooEntry, vocab: CharVocab | None = None) -> CharLMData:
    # legacy_starts: gpt-char-jargon was trained before get_batch's fix (data.LEGACY_SAMPLER_ARTIFACTS)
    return CharLMData(context=entry.context, batch_size=entry.batch_size, vocab=vocab, legacy_starts=True)


def _batches(data: CharLMData):
    """Training batches of the entry's size; validation batches always of 12 (comparable losses)."""
    return lambda split, g: data.get_batch(split, g, batch_size=None if split == "train" else 12)


def _build_model(entry: ZooEntry, vocab_size: int) -> GPT:
    if entry.model != "gpt":
        raise ValueError(f"model: unknown zoo model kind {entry.model!r}")
    return GPT(GPTConfig(vocab_size=vocab_size, context_length=entry.context, **entry.model_config))


def build(name: str, out_dir: Path | None = None, progress: bool = True,
          max_steps: int | None = None) -> Path:
    """Train entry ``name`` from its seed and write its two files; return the JSON's path.

    ``max_steps`` shortens training (smoke tests); shipped entries use the recipe's.
    """
    entry = _check_name(name)
    out_dir = Path(out_dir) if out_dir else zoo_dir()
    torch.manual_seed(entry.seed)
    data = _data(entry)
    model = _build_model(entry, len(data.vocab))
    overrides = {} if max_steps is None else dict(max_steps=max_steps, warmup_steps=0)
    cfg = TrainConfig(**{**entry.train_config, **overrides}, seed=entry.seed, progress=progress)
    with cpu_threads(1):
        start = time.perf_counter()
        result = train(model, _batches(data), cfg)
        seconds = time.perf_counter() - start
        eval_loss = evaluate(model, _batches(data), batches=EVAL_BATCHES, seed=EVAL_SEED)
    info = dict(
        name=name, description=entry.description, entry=asdict(entry),
        model_config=model.config.to_dict(), vocab=data.vocab.chars,
        eval=dict(split="val", batches=EVAL_BATCHES, batch_size=12, seed=EVAL_SEED, loss=eval_loss),
        train_seconds=round(seconds, 1), steps=result.step, log=result.log,
        command=f"python -m roadmap_lib build {name}", torch=torch.__version__,
    )
    weights = out_dir / f"{name}.safetensors"
    save_model(model, weights, config=model.config.to_dict(), extra={"vocab": data.vocab.chars})
    path = out_dir / f"{name}.json"
    atomic_write_text(path, json.dumps(info, indent=1) + "\n")
    return path


def load(name: str, zoo: Path | None = None) -> tuple[GPT, CharVocab, dict]:
    """``(model, vocab, info)`` of a shipped entry, the model in eval mode."""
    _check_name(name)
    return load_char_gpt(name, zoo)


def verify(name: str, zoo: Path | None = None) -> tuple[float, float]:
    """``(recomputed, recorded)`` evaluation loss of a shipped entry."""
    model, vocab, record = load(name, zoo)
    data = _data(_check_name(name), vocab)
    with cpu_threads(1):
        loss = evaluate(model, _batches(data), batches=record["eval"]["batches"], seed=record["eval"]["seed"])
    return loss, record["eval"]["loss"]



__all__ = ["ENTRIES", "ZooEntry", "build", "load", "verify", "zoo_dir"]
