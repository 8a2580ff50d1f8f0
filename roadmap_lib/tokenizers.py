"""Tokenizers from scratch: the shared interface, a character tokenizer, and the helpers they share.

minbpe style: :class:`Tokenizer` is a tiny base class (``train`` / ``encode`` / ``decode`` /
``save`` / ``load``) and each algorithm is one subclass, about a page long, in its own module:

- :class:`CharTokenizer` (here): one token per Unicode character seen in training;
- :class:`~roadmap_lib.bpe.BPETokenizer`: byte-level BPE with GPT-2 pre-tokenisation
  (Sennrich et al. 2016; Radford et al. 2019);
- :class:`~roadmap_lib.wordpiece.WordPieceTokenizer`: likelihood-scored merges, greedy
  longest-match-first encoding with ``##`` continuations (Schuster & Nakajima 2012);
- :class:`~roadmap_lib.unigram.UnigramTokenizer`: a unigram language model over pieces, trained by
  EM, Viterbi segmentation and sampled segmentations (Kudo 2018).

BPE, WordPiece and Unigram save to a Hugging Face ``tokenizer.json`` that the ``tokenizers``
library loads; :func:`load` reads any of them back (and the character tokenizer's own JSON).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence

from .fileio import atomic_write_text


# ----------------------------------------------------------------------------- shared helpers
def atomic_write(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``: never half-written."""
    atomic_write_text(path, text)


def check_vocab_size(vocab_size: object, minimum: int, what: str) -> int:
    """Validate a requested vocabulary size against the smallest one that can represent the input."""
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise TypeError(f"vocab_size: expected an int, got {type(vocab_size).__name__}")
    if vocab_size < minimum:
        raise ValueError(f"vocab_size: expected at least {minimum} ({what}), got {vocab_size}")
    return vocab_size


def check_special_tokens(special_tokens: object) -> list[str]:
    """Special tokens: a list of distinct non-empty strings."""
    if special_tokens is None:
        return []
    if isinstance(special_tokens, str) or not isinstance(special_tokens, Iterable):
        raise TypeError(
            f"special_tokens: expected a list of strings, got {type(special_tokens).__name__}"
        )
    out = list(special_tokens)
    for s in out:
        if not isinstance(s, str) or not s:
            raise ValueError(f"special_tokens: expected non-empty strings, got {s!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"special_tokens: expected distinct strings, got {out}")
    return out


def as_texts(text: str | Iterable[str]) -> Iterator[str]:
    """Training input: one string, or an iterable of strings (e.g. the lines of a file)."""
    if isinstance(text, str):
        yield text
        return
    if not isinstance(text, Iterable):
        raise TypeError(f"text: expected a str or an iterable of str, got {type(text).__name__}")
    for t in text:
        if not isinstance(t, str):
            raise TypeError(f"text: expected strings, got an item of type {type(t).__name__}")
        yield t


def check_ids(ids: Sequence[int], vocab_size: int) -> list[int]:
    """Token ids for decode: ints in ``[0, vocab_size)``."""
    out = []
    for i in ids:
        if hasattr(i, "item"):  # a tensor or numpy scalar
            i = i.item()
        if not isinstance(i, int) or isinstance(i, bool):
            raise TypeError(f"ids: expected ints, got {type(i).__name__}")
        if not 0 <= i < vocab_size:
            raise ValueError(f"ids: token id {i} is out of range [0, {vocab_size})")
        out.append(i)
    return out


# ----------------------------------------------------------------------------- the interface
class Tokenizer:
    """The interface every tokenizer implements.

    ``train(text, vocab_size)`` learns a vocabulary; ``encode(text) -> list[int]`` and
    ``decode(ids) -> str`` convert; ``tokenize(text) -> list[str]`` shows the pieces;
    ``encode_iter(lines)`` encodes a stream chunk by chunk; ``save(path)`` / ``load(path)``.
    """

    name = "base"

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def train(self, text: str | Iterable[str], vocab_size: int, **kwargs) -> Tokenizer:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def id_to_token(self, i: int) -> str:
        raise NotImplementedError

    def tokenize(self, text: str) -> list[str]:
        """The pieces ``text`` is split into, as readable strings (for display)."""
        return [self.id_to_token(i) for i in self.encode(text)]

    def encode_iter(self, lines: Iterable[str]) -> Iterator[list[int]]:
        """Encode a stream of strings (e.g. an open file) without holding it all in memory.

        The base version encodes each item on its own; BPE overrides it so that the concatenated
        output equals ``encode`` of the whole text.
        """
        for line in lines:
            yield self.encode(line)

    def save(self, path: str | os.PathLike) -> None:
        atomic_write(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Load a file written by :meth:`save` (raises TypeError if it holds another kind)."""
        tok = load(path)
        if not isinstance(tok, cls):
            raise TypeError(f"{path}: holds a {type(tok).__name__}, not a {cls.__name__}")
        return tok

    def to_dict(self) -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        try:
            return f"{type(self).__name__}(vocab_size={self.vocab_size})"
        except (NotImplementedError, AttributeError):
            return f"{type(self).__name__}(untrained)"


# ----------------------------------------------------------------------------- characters
class CharTokenizer(Tokenizer):
    """One token per character seen in training, plus an ``unk`` token for the rest.

    ``vocab_size`` in :meth:`train` is an upper bound: the most frequent characters are kept.
    """

    name = "char"

    def __init__(self, unk_token: str = "<unk>"):
        self.unk_token = unk_token
        self.itos: list[str] = []
        self.stoi: dict[str, int] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def train(self, text, vocab_size: int = 1_000_000, **kwargs) -> CharTokenizer:
        check_vocab_size(vocab_size, 2, "the unknown token and one character")
        counts: dict[str, int] = {}
        for t in as_texts(text):
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        kept = sorted(counts, key=lambda c: (-counts[c], c))[: vocab_size - 1]
        self.itos = [self.unk_token] + sorted(kept)
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        return self

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        return [self.stoi.get(c, 0) for c in text]

    def decode(self, ids) -> str:
        return "".join(self.itos[i] for i in check_ids(ids, self.vocab_size))

    def id_to_token(self, i: int) -> str:
        return self.itos[i]

    def to_dict(self) -> dict:
        return {"type": "Char", "unk_token": self.unk_token, "vocab": self.itos}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        tok = cls(d.get("unk_token", "<unk>"))
        tok.itos = list(d["vocab"])
        tok.stoi = {c: i for i, c in enumerate(tok.itos)}
        return tok


def load(path: str | os.PathLike) -> Tokenizer:
    """Load any tokenizer saved by :meth:`Tokenizer.save` (a Hugging Face ``tokenizer.json`` for
    BPE, WordPiece and Unigram; our own small JSON for characters)."""
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    kind = d.get("type") or d.get("model", {}).get("type")
    if kind == "Char":
        return CharTokenizer.from_dict(d)
    if kind in ("BPE", "WordPiece", "Unigram"):
        return __getattr__(f"{kind}Tokenizer").from_hf_dict(d)
    raise ValueError(f"{path}: unknown tokenizer type {kind!r} (expected Char, BPE, WordPiece or Unigram)")


def __getattr__(name: str):
    # The subclasses live in sibling modules that import the helpers above, so they are
    # re-exported lazily: `from roadmap_lib.tokenizers import BPETokenizer` works.
    if name in _SIBLINGS:
        import importlib

        return getattr(importlib.import_module(_SIBLINGS[name], __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_SIBLINGS = {"BPETokenizer": ".bpe", "WordPieceTokenizer": ".wordpiece",
             "UnigramTokenizer": ".unigram"}

__all__ = [
    "BPETokenizer",  # noqa: F822 (lazily re-exported by __getattr__)
    "CharTokenizer",
    "Tokenizer",
    "UnigramTokenizer",  # noqa: F822
    "WordPieceTokenizer",  # noqa: F822
    "atomic_write",
    "load",
]
