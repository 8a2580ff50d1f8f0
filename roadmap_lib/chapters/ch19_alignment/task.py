"""Chapter 19's preference task: continue a snippet of the Jargon File with *real words*.

The ground truth stands in for a human rater: a completion's **true reward** is the fraction of its
non-space characters that lie in words of the corpus vocabulary (the lowercase letter runs that
occur at least ``MIN_COUNT`` times in ``jargon.txt``). Misspelt or invented words, digits,
punctuation and markup score 0; ``"the hacker"`` scores 1. It is cheap, exact and seeded, so every
method can be judged by the same rule the preference labels came from.

Prompts are ``PROMPT_LEN``-character windows of the corpus that start at a word, drawn with a seed
from the first 90% (train) or the last 10% (held out) of the text.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

import torch

from roadmap_lib import data_path
from roadmap_lib.data import CharVocab

PROMPT_LEN = 16
COMPLETION_LEN = 16
MIN_COUNT = 3
WORD = re.compile(r"[a-z]+")


@lru_cache(maxsize=1)
def corpus() -> str:
    return data_path("jargon.txt").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def word_vocabulary() -> frozenset[str]:
    """Lowercase letter runs of the corpus seen at least ``MIN_COUNT`` times."""
    counts = Counter(WORD.findall(corpus().lower()))
    return frozenset(w for w, c in counts.items() if c >= MIN_COUNT)


def real_word_fraction(text: str) -> float:
    """Fraction of ``text``'s non-space characters inside letter runs that are vocabulary words.

    Letters are matched case-insensitively; every other non-space character (digits, punctuation,
    newlines, markup) counts against. Empty or all-space text scores 0.
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    total = sum(not ch.isspace() for ch in text)
    if total == 0:
        return 0.0
    vocab = word_vocabulary()
    good = sum(len(w) for w in WORD.findall(text.lower()) if w in vocab)
    return good / total


def true_reward_fn(vocab: CharVocab):
    """The ground truth as a reward function ``(ids, prompt_len) -> (batch,)`` on the completions."""

    def reward(ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
        return torch.tensor([real_word_fraction(vocab.decode(row.tolist())) for row in ids[:, prompt_len:]])

    return reward


def prompts(vocab: CharVocab, n: int, *, split: str = "train", seed: int = 0) -> torch.Tensor:
    """``n`` corpus windows of ``PROMPT_LEN`` characters starting at a word -> (n, PROMPT_LEN) ids."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    text = corpus()
    cut = int(0.9 * len(text))
    lo, hi = (0, cut) if split == "train" else (cut, len(text))
    g = torch.Generator().manual_seed(seed)
    rows: list[list[int]] = []
    while len(rows) < n:
        i = int(torch.randint(lo + 1, hi - PROMPT_LEN, (1,), generator=g))
        if text[i - 1] == " " and text[i].isalpha():
            rows.append(vocab.encode(text[i:i + PROMPT_LEN]).tolist())
    return torch.tensor(rows, dtype=torch.long)
