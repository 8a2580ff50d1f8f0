"""Summarisation as an application: recover an entry's definition from the rest of the entry.

Task (a stated rule, ``examples``): every Jargon File entry whose body, after a sense number and
``[tags]``, splits into at least ``MIN_SENTENCES`` sentences and whose first sentence has at least
8 words. The **target** is that first sentence (the definition, the entry's own one-line summary);
the **source** is the remaining sentences. Every system is extractive: it returns one source
sentence (lead-2 returns two), scored by ROUGE-L F1 against the target (``roadmap_lib.metrics``,
equal to ``rouge-score``).

- **lead-1 / lead-2**: the first one or two source sentences, the classic baseline;
- **position + length**: logistic regression on the sentence's position (one-hot, 5 = "5 or later")
  and length: a lead-k that is learned;
- **BERT scorer**: the same, plus the zoo word BERT's (``bert-word-jargon``, frozen) mean-pooled
  vector of the sentence and its product with the mean vector of the whole source;
- **oracle**: the source sentence with the best ROUGE-L (the ceiling of one-sentence extraction).

Scorers are trained to recognise the oracle sentence on the entries outside a test third drawn by
``seed``; a seed is one train/test split (the logistic regression itself is deterministic).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from roadmap_lib.metrics import rouge
from roadmap_lib.retrieval import Document

MIN_SENTENCES = 4  # the definition + at least 3 source sentences
MIN_TARGET_WORDS = 8
MAX_POSITION = 5
TEST_SHARE = 1 / 3
SYSTEMS = ("lead-1", "lead-2", "position + length", "BERT scorer", "oracle")
CONTEXT, PAD, CLS, SEP = 32, 0, 2, 3  # the word BERT's input format (chapter 06)

_SENSE = re.compile(r"^(\d+\.\s*)?(\[[^\]]*\]\s*)*")
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"(“])")


def split_sentences(text: str) -> list[str]:
    """Sentences: a break after ``.``, ``!`` or ``?`` and whitespace, before a capital, digit,
    quote or bracket (so "e.g. the" stays whole, "U.S. Navy" does not)."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    return [s.strip() for s in _SPLIT.split(text.strip()) if s.strip()]


@dataclass(frozen=True)
class Example:
    doc_id: int
    title: str
    target: str
    sources: tuple[str, ...]


def examples(docs: Sequence[Document]) -> list[Example]:
    """The module docstring's rule, in entry order."""
    out = []
    for d in docs:
        sents = split_sentences(_SENSE.sub("", d.text.strip(), count=1))
        if len(sents) >= MIN_SENTENCES and len(sents[0].split()) >= MIN_TARGET_WORDS:
            out.append(Example(d.doc_id, d.title, sents[0], tuple(sents[1:])))
    return out


def rouge_l(target: str, prediction: str) -> float:
    return rouge(target, prediction, ("rougeL",))["rougeL"].fmeasure


def oracle_index(ex: Example) -> int:
    """The source sentence with the highest ROUGE-L against the target (the first on ties)."""
    scores = [rouge_l(ex.target, s) for s in ex.sources]
    return scores.index(max(scores))


def test_split(n: int, seed: int) -> list[int]:
    """Indices (sorted) of the test third of ``n`` examples for split ``seed``."""
    if not isinstance(n, int) or n < 3:
        raise ValueError(f"n: expected an int >= 3 examples, got {n!r}")
    ids = list(range(n))
    random.Random(seed).shuffle(ids)
    return sorted(ids[: round(n * TEST_SHARE)])


@torch.no_grad()
def embed(model, vocab, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """``(len(texts), hidden)``: the word BERT's final hidden states, mean-pooled over the words
    (``[CLS]`` and ``[SEP]`` included, padding excluded); a text keeps its first 30 words."""
    out = []
    model.eval()
    for b in range(0, len(texts), batch_size):
        chunk = texts[b: b + batch_size]
        ids = torch.full((len(chunk), CONTEXT), PAD, dtype=torch.long)
        for r, t in enumerate(chunk):
            words = vocab.encode(" ".join(t.split()[: CONTEXT - 2]))[: CONTEXT - 2]
            ids[r, : len(words) + 2] = torch.tensor([CLS, *words, SEP])
        mask = ids != PAD
        h = model.bert(ids, None, mask)
        m = mask.unsqueeze(-1).float()
        out.append(((h * m).sum(1) / m.sum(1)).numpy())
    return np.concatenate(out).astype(np.float64)


def position_features(ex: Example) -> np.ndarray:
    """``(len(sources), MAX_POSITION + 2)``: one-hot position (capped) and length in words / 30."""
    f = np.zeros((len(ex.sources), MAX_POSITION + 2))
    for i, s in enumerate(ex.sources):
        f[i, min(i, MAX_POSITION)] = 1.0
        f[i, -1] = len(s.split()) / 30
    return f


def features(exs: Sequence[Example], vectors: np.ndarray | None) -> list[np.ndarray]:
    """Per example, one feature row per source sentence: position features, and with ``vectors``
    (one row per source sentence, examples in order) the sentence vector and its product with the
    source's mean vector."""
    n = sum(len(ex.sources) for ex in exs)
    if vectors is not None and len(vectors) != n:
        raise ValueError(f"vectors: expected one row per source sentence ({n}), got {len(vectors)}")
    out, k = [], 0
    for ex in exs:
        f = position_features(ex)
        if vectors is not None:
            v = vectors[k: k + len(ex.sources)]
            f = np.concatenate([f, v, v * v.mean(0)], axis=1)
        k += len(ex.sources)
        out.append(f)
    return out


def train_and_pick(feats: Sequence[np.ndarray], oracle: Sequence[int], test: Sequence[int]) -> list[int]:
    """Fit a logistic regression (oracle sentence vs the others) on the examples outside ``test``;
    return, per test example, the index of its highest-scoring source sentence."""
    from sklearn.linear_model import LogisticRegression

    held = set(test)
    train = [i for i in range(len(feats)) if i not in held]
    x = np.concatenate([feats[i] for i in train])
    y = np.concatenate([np.arange(len(feats[i])) == oracle[i] for i in train]).astype(int)
    clf = LogisticRegression(max_iter=3000).fit(x, y)
    return [int(clf.decision_function(feats[i]).argmax()) for i in test]


def summary_of(ex: Example, system: str, pick: int | None = None) -> str:
    """The text a system returns for ``ex``; the scorers (and the oracle) need their ``pick``."""
    if system == "lead-1":
        return ex.sources[0]
    if system == "lead-2":
        return " ".join(ex.sources[:2])
    if system not in SYSTEMS:
        raise ValueError(f"system: expected one of {SYSTEMS}, got {system!r}")
    if pick is None:
        raise ValueError(f"pick: the {system!r} system needs the index of its chosen sentence")
    return ex.sources[pick]


def scores(exs: Sequence[Example], system: str, picks: Sequence[int] | None = None) -> torch.Tensor:
    """Per-example ROUGE-L F1 (float64) of ``system`` on ``exs``."""
    picks = list(picks) if picks is not None else [None] * len(exs)
    if len(picks) != len(exs):
        raise ValueError(f"picks: expected one per example ({len(exs)}), got {len(picks)}")
    return torch.tensor([rouge_l(ex.target, summary_of(ex, system, p)) for ex, p in zip(exs, picks)],
                        dtype=torch.float64)


def run_study(seeds: Sequence[int] = (0, 1, 2)) -> dict:
    """Every split's test ids and picks per trained system, and the mean ROUGE-L of every system."""
    from roadmap_lib.chapters.ch22_applications.experiments import load_encoder
    from roadmap_lib.chapters.ch22_applications.retrieve import corpus

    exs = examples(corpus())
    oracle = [oracle_index(ex) for ex in exs]
    model, vocab = load_encoder()
    vectors = embed(model, vocab, [s for ex in exs for s in ex.sources])
    feats = {"position + length": features(exs, None), "BERT scorer": features(exs, vectors)}
    record = {"n_examples": len(exs), "seeds": {}}
    for seed in seeds:
        test = test_split(len(exs), seed)
        picks = {name: train_and_pick(f, oracle, test) for name, f in feats.items()}
        picks["oracle"] = [oracle[i] for i in test]
        tex = [exs[i] for i in test]
        rouge_mean = {s: scores(tex, s, picks.get(s)).mean().item() for s in SYSTEMS}
        record["seeds"][str(seed)] = {"test": test, "picks": picks, "rougeL": rouge_mean}
    return record


__all__ = ["Example", "SYSTEMS", "embed", "examples", "features", "oracle_index", "position_features", "rouge_l",
           "run_study", "scores", "split_sentences", "summary_of", "test_split", "train_and_pick"]
