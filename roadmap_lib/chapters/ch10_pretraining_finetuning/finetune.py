"""How much of a pretrained encoder to fine-tune: the head only (a linear probe), the top block
and the head, or everything.

The encoder is the zoo's word-level BERT of chapter 06 (``bert-word-jargon``: 2 post-norm blocks,
128 dimensions, pretrained with masked LM on Jargon File sentences). The task is the shipped
*intruder* task tagged word by word: one word of some sentences was replaced by another word of the
vocabulary, and the model must flag it (a token classifier: one linear layer at every position on
the encoder's output). The score is the F1 of the "intruder" class over the words of the validation
split. Each level is trained with the same recipe (AdamW, warmup + cosine, one thread); frozen
parameters have ``requires_grad=False``, so autograd skips their backward pass and the optimiser
never sees them.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from roadmap_lib.data import load_task
from roadmap_lib.measure import count_parameters, cpu_threads
from roadmap_lib.metrics import token_f1
from roadmap_lib.models.bert import BertForMaskedLM, BertForTokenClassification
from roadmap_lib.tokenizers.word import WordTokenizer
from roadmap_lib.training import TrainConfig, train
from roadmap_lib.zoo import load_word_bert

ENCODER = "bert-word-jargon"
LEVELS = ("head only", "top block + head", "full")
PAD, CLS, SEP = 0, 2, 3
POS_WEIGHT = 5.0  # about 1 word in 30 is an intruder: weight that class so "never flag" does not pay


def load_encoder():
    """``(BertForMaskedLM, WordTokenizer, record)`` of the zoo encoder."""
    return load_word_bert(ENCODER)


def encode_task(vocab: WordTokenizer, split: str, limit: int | None = None, context: int = 32):
    """``(ids, labels)``, both ``(n, context)``: ``[CLS] words [SEP]`` padded with ``[PAD]``; label 1
    at the intruder word, 0 at the other words, -100 at specials and padding."""
    rows = load_task("intruder", split)[:limit]
    ids = torch.full((len(rows), context), PAD, dtype=torch.long)
    labels = torch.full((len(rows), context), -100, dtype=torch.long)
    for r, row in enumerate(rows):
        words = vocab.encode(row["text"])
        if len(words) > context - 2:
            raise ValueError(f"split {split!r} row {r}: expected at most {context - 2} words, got {len(words)}")
        ids[r, : len(words) + 2] = torch.tensor([CLS, *words, SEP])
        labels[r, 1 : len(words) + 1] = 0
        if int(row["position"]) >= 0:
            labels[r, int(row["position"]) + 1] = 1
    return ids, labels


def make_tagger(encoder: BertForMaskedLM, level: str, seed: int) -> nn.Module:
    """A token classifier with the pretrained encoder's weights and a fresh head (drawn from ``seed``);
    the parameters outside ``level`` are frozen."""
    if level not in LEVELS:
        raise ValueError(f"level: expected one of {LEVELS}, got {level!r}")
    torch.manual_seed(seed)
    model = BertForTokenClassification(encoder.config)
    model.bert.load_state_dict(encoder.bert.state_dict())
    for name, p in model.named_parameters():
        trainable = {"head only": not name.startswith("bert."),
                     "top block + head": not name.startswith("bert.") or name.startswith(f"bert.blocks.{len(model.bert.blocks) - 1}."),
                     "full": True}[level]
        p.requires_grad_(trainable)
    return model


def _loss(model, ids, labels):
    logits = model(ids, attention_mask=ids != PAD)
    return F.cross_entropy(logits.reshape(-1, 2), labels.reshape(-1), weight=torch.tensor([1.0, POS_WEIGHT]),
                           ignore_index=-100)


@torch.no_grad()
def f1_score(model: nn.Module, ids: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    pred = model(ids, attention_mask=ids != PAD).argmax(-1)
    return token_f1(pred, labels)


def run_level(encoder, train_data, val_data, level: str, seed: int, *, steps: int = 300, lr: float = 1e-3,
              batch_size: int = 32) -> dict:
    """Fine-tune one level with one seed; return F1, trainable parameters and training seconds."""
    model = make_tagger(encoder, level, seed)
    ids, labels = train_data

    def get_batch(split, generator):
        rows = torch.randint(0, len(ids), (batch_size,), generator=generator)
        return ids[rows], labels[rows]

    cfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=steps // 10, weight_decay=0.01,
                      eval_interval=steps, eval_batches=1, seed=seed, progress=False)
    with cpu_threads(1):
        start = time.process_time()  # CPU time of this process: steadier than wall time on a busy machine
        result = train(model, get_batch, cfg, loss_fn=_loss)
        seconds = time.process_time() - start
        f1 = f1_score(model, *val_data)
    return {"level": level, "seed": seed, "f1": f1, "trainable": count_parameters(model, trainable_only=True),
            "total": count_parameters(model), "seconds": seconds, "final_loss": result.log[-1]["loss"]}


def sweep(seeds=(0, 1, 2), levels=LEVELS, *, steps: int = 300, n_train: int = 5600, n_val: int = 700,
          progress: bool = True) -> list[dict]:
    """Every level with every seed on the same data; a list of :func:`run_level` rows."""
    from tqdm.auto import tqdm

    encoder, vocab, _ = load_encoder()
    train_data, val_data = encode_task(vocab, "train", n_train), encode_task(vocab, "val", n_val)
    jobs = [(lv, s) for s in seeds for lv in levels]
    return [run_level(encoder, train_data, val_data, lv, s, steps=steps)
            for lv, s in tqdm(jobs, desc="fine-tune", disable=not progress)]


def summarise(rows: list[dict]) -> dict[str, dict]:
    """``{level: {"f1": mean, "f1_min", "f1_max", "trainable", "seconds": mean}}``."""
    out = {}
    for level in dict.fromkeys(r["level"] for r in rows):
        rs = [r for r in rows if r["level"] == level]
        f1 = [r["f1"] for r in rs]
        out[level] = {"f1": sum(f1) / len(f1), "f1_min": min(f1), "f1_max": max(f1),
                      "trainable": rs[0]["trainable"], "total": rs[0]["total"],
                      "seconds": sum(r["seconds"] for r in rs) / len(rs)}
    return out


RESULTS = "10_finetune_depth.json"
RECIPE = {"steps": 300, "lr": 1e-3, "batch_size": 32, "n_train": 5600, "n_val": 700}
SEEDS = (0, 1, 2)


def rerun_point(level: str = "head only", seed: int = 0) -> dict:
    """One cell of the shipped sweep, re-run with its recipe (head only: about 10 s on one core)."""
    encoder, vocab, _ = load_encoder()
    r = RECIPE
    return run_level(encoder, encode_task(vocab, "train", r["n_train"]), encode_task(vocab, "val", r["n_val"]),
                     level, seed, steps=r["steps"], lr=r["lr"], batch_size=r["batch_size"])


def build(path) -> dict:
    """Run the sweep (3 levels x 3 seeds, about 2.5 CPU minutes on one thread) and write ``path``."""
    import json
    from pathlib import Path

    from roadmap_lib.fileio import atomic_write_text

    start = time.perf_counter()
    rows = sweep(SEEDS, steps=RECIPE["steps"], n_train=RECIPE["n_train"], n_val=RECIPE["n_val"], progress=False)
    info = {"task": "intruder (word tagging)", "split": "val", "metric": "F1 of the intruder class",
            "encoder": ENCODER, "levels": list(LEVELS), "seeds": list(SEEDS), "recipe": RECIPE, "runs": rows,
            "seconds": time.perf_counter() - start, "command": "python -m roadmap_lib build 10-finetune-depth",
            "torch": torch.__version__}
    atomic_write_text(Path(path), json.dumps(info, indent=1))
    return info
