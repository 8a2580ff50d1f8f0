"""Pretraining one small T5 with each objective on the same sentences and the same budget (chapter 08).

Same model (``text_to_text.MODEL``), same seed, same steps, same batch of sentences per step, same
learning-rate schedule; only the noise differs. Span corruption's targets are short (the hidden
spans), infilling's are the whole sentence, so the decoder reads more tokens for the same sentences:
the record counts both. Pretraining sentences: :func:`roadmap_lib.chapters.ch08_text_to_text.common.pretraining_sentences`
(Jargon File prose sentences minus the originals of the acceptability task's val and test sentences).

``build("span")`` / ``build("denoise")`` write ``data/zoo/t2t-span`` / ``t2t-denoise``
(``.safetensors`` + ``.json``); ``verify`` recomputes the recorded validation loss.
"""

from __future__ import annotations

from pathlib import Path

import torch

from roadmap_lib.chapters.ch08_text_to_text.common import (
    NOISES,
    SEED,
    T2TVocab,
    corpus_vocab,
    fit,
    generate,
    load,
    make_batch,
    new_model,
    pretraining_sentences,
    save,
)
from roadmap_lib.measure import cpu_threads
from roadmap_lib.objectives import seq2seq_loss
from roadmap_lib.training import evaluate

BATCH = 64
EVAL_BATCHES, EVAL_SEED = 10, 1
TRAIN = {"max_steps": 1500, "lr": 5e-3, "warmup_steps": 100, "min_lr_ratio": 0.1, "weight_decay": 0.01,
         "betas": (0.9, 0.98), "grad_clip": 1.0, "eval_interval": 100, "eval_batches": EVAL_BATCHES}


def name_of(objective: str) -> str:
    if objective not in NOISES:
        raise ValueError(f"objective: expected one of {sorted(NOISES)}, got {objective!r}")
    return f"t2t-{objective}"


class PretrainData:
    """Encoded sentences (seeded 95/5 train/val split), noised afresh for every batch.

    ``get_batch(split, generator)`` is what :func:`roadmap_lib.training.train` expects; it adds
    the number of source and target tokens it produced (``</s>`` included) to ``self.tokens``.
    """

    def __init__(self, objective: str, vocab: T2TVocab | None = None, batch_size: int = BATCH):
        name_of(objective)
        sentences = pretraining_sentences()
        order = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(SEED)).tolist()
        self.vocab = vocab or corpus_vocab()
        texts = [sentences[i] for i in order]
        n_val = len(texts) // 20
        self.texts = {"train": texts[n_val:], "val": texts[:n_val]}
        self.splits = {k: [self.vocab.encode(s) for s in v] for k, v in self.texts.items()}
        self.noise, self.batch_size = NOISES[objective], batch_size
        self.tokens = {"src": 0, "tgt": 0}

    def get_batch(self, split: str, generator: torch.Generator | None = None):
        if split not in self.splits:
            raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
        data = self.splits[split]
        rows = torch.randint(len(data), (self.batch_size,), generator=generator).tolist()
        pairs = [self.noise(data[i], generator=generator) for i in rows]
        if split == "train":
            self.tokens["src"] += sum(len(s) + 1 for s, _ in pairs)
            self.tokens["tgt"] += sum(len(t) + 1 for _, t in pairs)
        return make_batch(pairs)


def build(objective: str, zoo: Path | None = None, progress: bool = True, max_steps: int | None = None) -> dict:
    """Pretrain from the seed (one CPU thread), save, and return the JSON record."""
    name = name_of(objective)
    with cpu_threads(1):
        data = PretrainData(objective)
        model = new_model(len(data.vocab))
        summary, val_loss = fit(model, data.get_batch, TRAIN, max_steps=max_steps, progress=progress,
                                eval_batches=EVAL_BATCHES, eval_seed=EVAL_SEED)
    record = {
        "name": name, "objective": objective,
        "description": f"word-level T5 pretrained with {'span corruption' if objective == 'span' else 'BART text infilling'}"
                       " on Jargon File sentences (held-out acceptability val/test originals excluded)",
        "command": f"python -m roadmap_lib build {name}", "seed": SEED,
        "model_config": model.config.to_dict(), "train_config": TRAIN, "batch_size": BATCH,
        "n_sentences": {k: len(v) for k, v in data.splits.items()},
        "tokens_seen": dict(data.tokens), "sentences_seen": summary["steps"] * BATCH,
        **summary,
        "val_loss": val_loss, "eval": {"batches": EVAL_BATCHES, "seed": EVAL_SEED, "batch_size": BATCH},
        "torch": torch.__version__,
    }
    save(model, data.vocab, record, name, zoo)
    return record


def verify(objective: str, zoo: Path | None = None) -> dict:
    """``{"val_loss": recomputed, "recorded": recorded}`` for one shipped pretrained model."""
    model, vocab, record = load(name_of(objective), zoo)
    data = PretrainData(objective, vocab)
    with cpu_threads(1):
        loss = evaluate(model, data.get_batch, seq2seq_loss, batches=record["eval"]["batches"],
                        seed=record["eval"]["seed"])
    return {"val_loss": loss, "recorded": record["val_loss"]}


@torch.no_grad()
def fill_in(model, vocab: T2TVocab, sentences: list[str], objective: str, seed: int = 0) -> dict:
    """Noise each sentence with ``objective``'s noise (seeded), decode greedily, compare with the
    target: ``{"exact": fraction of targets written exactly, "word_accuracy": fraction of target
    positions with the right word}`` (sentinels count as words of the T5 target)."""
    name_of(objective)
    g = torch.Generator().manual_seed(seed)
    pairs = [NOISES[objective](vocab.encode(s), generator=g) for s in sentences]
    outputs = generate(model, vocab, [vocab.decode(x, keep_special=True) for x, _ in pairs], keep_special=True)
    targets = [vocab.decode(t, keep_special=True).split() for _, t in pairs]
    hits = sum(a == b for out, tgt in zip(outputs, targets) for a, b in zip(out.split(), tgt))
    return {"exact": sum(out.split() == tgt for out, tgt in zip(outputs, targets)) / len(pairs),
            "word_accuracy": hits / sum(len(t) for t in targets)}


__all__ = ["BATCH", "TRAIN", "PretrainData", "build", "fill_in", "name_of", "verify"]
