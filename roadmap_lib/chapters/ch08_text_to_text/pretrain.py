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
    EOS,
    SEED,
    SENTINELS,
    UNK,
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
# T5's 15% noise with mean span 3 was set for 512-token inputs (about 26 spans each); on our
# ~15-word sentences it hides ONE span of 2 words, so a target is 4 tokens of which the sentinel and
# </s> come for free, and 15% of the hidden words are <unk>, the most frequent token. The first
# build with those settings learnt only the prior (every output "<extra_id_0> <unk> <unk>"). So
# span corruption hides the same 30% of the words as BART's infilling (T5 found 10-25% about
# equal, 50% a little worse), and its loss never asks for <unk>: it names no word, and writing it
# is what a model that ignores the context does. (BART's target is the whole sentence, whose
# <unk>s are mostly visible in the input and copied; it is left as built.) With both changes the
# model still learns only the prior in 1,500 steps: chapter 08, section 3 measures it with
# :func:`hidden_word_loss` against :func:`word_prior`.
NOISE_SETTINGS = {"span": {"noise_density": 0.3, "mean_span": 3.0}, "denoise": {"mask_ratio": 0.3, "poisson_lambda": 3.0}}
LOSS_IGNORES = {"span": (UNK,), "denoise": ()}
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
        self.settings, self.ignore = NOISE_SETTINGS[objective], LOSS_IGNORES[objective]
        self.tokens = {"src": 0, "tgt": 0}

    def get_batch(self, split: str, generator: torch.Generator | None = None):
        if split not in self.splits:
            raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
        data = self.splits[split]
        rows = torch.randint(len(data), (self.batch_size,), generator=generator).tolist()
        pairs = [self.noise(data[i], generator=generator, **self.settings) for i in rows]
        if split == "train":
            self.tokens["src"] += sum(len(s) + 1 for s, _ in pairs)
            self.tokens["tgt"] += sum(len(t) + 1 for _, t in pairs)
        return make_batch(pairs, ignore=self.ignore)


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
        "noise": NOISE_SETTINGS[objective], "loss_ignores": [data.vocab.itos[t] for t in LOSS_IGNORES[objective]],
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
    """Noise each sentence with ``objective``'s pretraining noise (seeded), decode greedily, compare
    with the target position by position, ``<unk>`` positions not counted (any word there is
    accepted): ``{"exact": fraction of targets written exactly, "word_accuracy": fraction of the
    counted target positions with the right word}`` (sentinels count as words of the T5 target)."""
    name_of(objective)
    g = torch.Generator().manual_seed(seed)
    pairs = [NOISES[objective](vocab.encode(s), generator=g, **NOISE_SETTINGS[objective]) for s in sentences]
    outputs = generate(model, vocab, [vocab.decode(x, keep_special=True) for x, _ in pairs], keep_special=True)
    targets = [vocab.decode(t, keep_special=True).split() for _, t in pairs]

    def right(out: list[str], tgt: list[str]) -> list[bool]:  # one flag per counted target position
        return [i < len(out) and out[i] == w for i, w in enumerate(tgt) if w != "<unk>"]

    flags = [right(out.split(), tgt) for out, tgt in zip(outputs, targets)]
    exact = [all(f) and len(out.split()) == len(tgt) for f, out, tgt in zip(flags, outputs, targets)]
    return {"exact": sum(exact) / len(pairs), "word_accuracy": sum(map(sum, flags)) / sum(map(len, flags))}


def noise_stats(data: PretrainData, split: str = "val", seed: int = 0, **settings) -> dict:
    """What span corruption with ``settings`` (default: the chapter's pretraining settings) asks
    of the model on ``data``'s sentences, averaged per sentence: ``words``, ``spans``, ``hidden``
    words, ``target`` tokens (``</s>`` included), and over all hidden words the fraction that are
    ``<unk>`` (``unk_hidden``)."""
    settings = settings or NOISE_SETTINGS["span"]
    g = torch.Generator().manual_seed(seed)
    rows = data.splits[split]
    pairs = [NOISES["span"](ids, generator=g, **settings) for ids in rows]
    hidden = [[t for t in tgt if t not in SENTINELS] for _, tgt in pairs]
    n = len(rows)
    return {"words": sum(map(len, rows)) / n, "spans": sum(len(t) - len(h) for (_, t), h in zip(pairs, hidden)) / n,
            "hidden": sum(map(len, hidden)) / n, "target": sum(len(t) + 1 for _, t in pairs) / n,
            "unk_hidden": sum(h.count(UNK) for h in hidden) / sum(map(len, hidden))}


def word_prior(data: PretrainData, *, ignore_unk: bool = True) -> float:
    """The unigram entropy (nats) of the training sentences' words, without ``<unk>`` when
    ``ignore_unk``: the loss per hidden word of a model that ignores its input and writes every
    hidden word from the corpus's word frequencies."""
    counts = torch.bincount(torch.tensor([t for ids in data.splits["train"] for t in ids]),
                            minlength=len(data.vocab)).double()
    if ignore_unk:
        counts[UNK] = 0
    p = counts[counts > 0] / counts.sum()
    return -(p * p.log()).sum().item()


@torch.no_grad()
def hidden_word_loss(model, data: PretrainData, batches: int = EVAL_BATCHES, seed: int = EVAL_SEED) -> dict:
    """Teacher-forced span-corruption loss and accuracy on the hidden *words* only (sentinels,
    ``</s>`` and ``<unk>`` not counted): ``{"loss": nats per word, "accuracy": argmax right, "words": n}``.
    Below :func:`word_prior`, the model uses the context of the gap."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    nll = hits = n = 0
    special = torch.tensor([*SENTINELS, EOS, UNK])
    for _ in range(batches):
        (src, mask, tgt_in), tgt = data.get_batch("val", g)
        logp = model(src, tgt_in, mask).log_softmax(-1)
        words = (tgt >= 0) & ~torch.isin(tgt, special)
        y = tgt[words]
        nll -= logp[words].gather(-1, y[:, None]).sum().item()
        hits += (logp[words].argmax(-1) == y).sum().item()
        n += len(y)
    return {"loss": nll / n, "accuracy": hits / n, "words": n}


__all__ = ["BATCH", "LOSS_IGNORES", "NOISE_SETTINGS", "TRAIN", "PretrainData", "build", "fill_in", "hidden_word_loss", "name_of", "noise_stats", "verify", "word_prior"]
