"""Chapter 15's shipped artifact: ``gpt-char-draft``, a tiny character GPT with the vocabulary of
``gpt-char-jargon``, the draft model of speculative decoding.

It is trained like chapter 07's model (same corpus, same context, same character vocabulary, ids
in the same order: a draft must propose tokens the target can verify) but one layer of 64
dimensions, so that a forward pass costs a small fraction of the target's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from roadmap_lib.checkpoint import save_model
from roadmap_lib.data import CharLMData, CharVocab
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import count_parameters, cpu_threads
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.training import TrainConfig, evaluate, train
from roadmap_lib.zoo import Artifact, check, load_char_gpt

NAME = "gpt-char-draft"
TARGET = "gpt-char-jargon"
MODEL = {"n_layers": 1, "n_heads": 2, "d_model": 64, "dropout": 0.0}
TRAIN = {"max_steps": 3000, "lr": 3e-3, "min_lr_ratio": 0.1, "warmup_steps": 100, "weight_decay": 0.1,
             "betas": (0.9, 0.99), "grad_clip": 1.0, "eval_interval": 250, "eval_batches": 20}
CONTEXT, BATCH, SEED = 64, 16, 0
EVAL = {"batches": 40, "batch_size": 12, "seed": 1}  # the evaluation chapter 07 records for the target


def _target_vocab(zoo: Path | None = None) -> CharVocab:
    """The target's vocabulary, read from its record (the ids must match the target's)."""
    _, vocab, _ = load_char_gpt(TARGET, zoo)
    return vocab


def _data(vocab: CharVocab) -> CharLMData:
    # legacy_starts: gpt-char-draft was trained before get_batch's fix (data.LEGACY_SAMPLER_ARTIFACTS)
    return CharLMData(context=CONTEXT, batch_size=BATCH, vocab=vocab, legacy_starts=True)


def _batches(data: CharLMData):
    return lambda split, g: data.get_batch(split, g, batch_size=None if split == "train"
                                           else EVAL["batch_size"])


def build_draft(out_dir: Path, *, max_steps: int | None = None, progress: bool = True,
                target_zoo: Path | None = None) -> Path:
    """Train the draft from its seed; write ``NAME.safetensors`` and ``NAME.json`` in ``out_dir``."""
    torch.manual_seed(SEED)
    vocab = _target_vocab(target_zoo)
    data = _data(vocab)
    model = GPT(GPTConfig(vocab_size=len(vocab), context_length=CONTEXT, **MODEL))
    overrides = {} if max_steps is None else {"max_steps": max_steps, "warmup_steps": 0}
    cfg = TrainConfig(**{**TRAIN, **overrides}, seed=SEED, progress=progress)
    with cpu_threads(1):
        start = time.perf_counter()
        result = train(model, _batches(data), cfg)
        seconds = time.perf_counter() - start
        loss = evaluate(model, _batches(data), batches=EVAL["batches"], seed=EVAL["seed"])
    info = {
        "name": NAME, "description": ARTIFACT_DESCRIPTION, "target": TARGET,
        "model_config": model.config.to_dict(), "parameters": count_parameters(model),
        "train_config": cfg.__dict__ | {"betas": list(cfg.betas)}, "batch_size": BATCH,
        "vocab": vocab.chars, "eval": dict(split="val", **EVAL, loss=loss),
        "train_seconds": round(seconds, 1), "steps": result.step, "log": result.log,
        "command": f"python -m roadmap_lib build {NAME}", "torch": torch.__version__,
    }
    out_dir = Path(out_dir)
    save_model(model, out_dir / f"{NAME}.safetensors", config=model.config.to_dict(),
               extra={"vocab": vocab.chars})
    path = out_dir / f"{NAME}.json"
    atomic_write_text(path, json.dumps(info, indent=1) + "\n")
    return path


def load_draft(zoo: Path | None = None):
    """``(draft model in eval mode, CharVocab, record)``."""
    return load_char_gpt(NAME, zoo)


def verify_draft(zoo: Path | None = None) -> tuple[float, float]:
    """``(recomputed, recorded)`` validation loss of the shipped draft."""
    model, vocab, record = load_draft(zoo)
    with cpu_threads(1):
        loss = evaluate(model, _batches(_data(vocab)), batches=EVAL["batches"], seed=EVAL["seed"])
    return loss, record["eval"]["loss"]


ARTIFACT_DESCRIPTION = ("character-level draft GPT (1 layer, 2 heads, 64 dims, context 64, the "
                        "vocabulary of gpt-char-jargon) for speculative decoding")


def _build(root: Path) -> None:
    # root is a staging folder inside the data folder being built: the target lies beside it
    target_zoo = root.parent / "zoo"
    built = (target_zoo / f"{TARGET}.safetensors").is_file()
    build_draft(root / "zoo", target_zoo=target_zoo if built else None)


def _verify(root: Path):
    got, recorded = verify_draft(root / "zoo")
    return [check("eval loss (nats/char)", got, recorded, 2e-3)]


ARTIFACTS = [Artifact(NAME, "15", ARTIFACT_DESCRIPTION,
                      (f"zoo/{NAME}.safetensors", f"zoo/{NAME}.json"), _build, _verify,
                      needs=(TARGET,), seed=SEED)]

__all__ = ["ARTIFACTS", "NAME", "TARGET", "build_draft", "load_draft", "verify_draft"]
