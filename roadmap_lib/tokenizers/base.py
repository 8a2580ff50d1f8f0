"""The interface every tokenizer of the book implements, and the input checks they share.

minbpe style: :class:`Tokenizer` is a tiny base class (``train`` / ``encode`` / ``decode`` /
``save`` / ``load``) and each algorithm is one subclass, about a page long, in its own module of
:mod:`roadmap_lib.tokenizers`:

- :class:`~roadmap_lib.tokenizers.char.CharTokenizer`: one token per Unicode character;
- :class:`~roadmap_lib.tokenizers.word.WordTokenizer`: one token per whitespace word (special
  tokens first), the vocabularies of the small word-level models of chapters 05, 06 and 08;
- :class:`~roadmap_lib.tokenizers.bpe.BPETokenizer`: byte-level BPE with GPT-2 pre-tokenisation
  (Sennrich et al. 2016; Radford et al. 2019);
- :class:`~roadmap_lib.tokenizers.wordpiece.WordPieceTokenizer`: likelihood-scored merges, greedy
  longest-match-first encoding with ``##`` continuations (Schuster & Nakajima 2012);
- :class:`~roadmap_lib.tokenizers.unigram.UnigramTokenizer`: a unigram language model over pieces,
  trained by EM, Viterbi segmentation and sampled segmentations (Kudo 2018).

BPE, WordPiece and Unigram save to a Hugging Face ``tokenizer.json`` that the ``tokenizers``
library loads; characters and words to a small JSON of our own. Each subclass names the ``type``
its file carries in ``kind``; :meth:`Tokenizer.load` (and :func:`load`) reads any of them back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence

from ..fileio import atomic_write_text


# ----------------------------------------------------------------------------- shared helpers
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
    """Token ids for decode: ints in ``[0, vocab_size)`` (a list, a tensor, an array...)."""
    if hasattr(ids, "tolist"):  # a tensor or numpy array: its ints, without a scalar per element
        ids = ids.tolist()
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
    ``encode_iter(lines)`` encodes a stream chunk by chunk; ``len(tok)`` is ``tok.vocab_size``;
    ``save(path)`` / ``load(path)``.
    """

    name = "base"
    #: The ``type`` a saved file carries (``"BPE"``, ``"Char"``...): a subclass that sets it is
    #: the one :meth:`load` builds for such a file. Subclasses that keep the file format of
    #: their parent (a chapter's vocabulary) leave it alone.
    kind: str | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            if cls.kind in _KINDS:
                raise TypeError(f"{cls.__name__}: kind {cls.kind!r} is already "
                                f"{_KINDS[cls.kind].__name__}'s")
            _KINDS[cls.kind] = cls

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.vocab_size

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
        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    def to_dict(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict) -> Tokenizer:
        raise NotImplementedError

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Load a file written by :meth:`save`: as ``cls`` when it is (a subclass of) the class
        that writes such files, else as that class; a TypeError if that is not a ``cls``."""
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        kind = d.get("type") or d.get("model", {}).get("type")
        if kind not in _KINDS:
            raise ValueError(f"{path}: unknown tokenizer type {kind!r} (expected one of "
                             f"{', '.join(sorted(_KINDS))})")
        writer = _KINDS[kind]
        if issubclass(cls, writer):
            return cls.from_dict(d)
        if not issubclass(writer, cls):
            raise TypeError(f"{path}: holds a {writer.__name__}, not a {cls.__name__}")
        return writer.from_dict(d)

    def __repr__(self) -> str:
        try:
            return f"{type(self).__name__}(vocab_size={self.vocab_size})"
        except (NotImplementedError, AttributeError):
            return f"{type(self).__name__}(untrained)"


#: ``kind`` -> the class that reads files of that type (filled as the subclasses are defined;
#: importing :mod:`roadmap_lib.tokenizers` defines them all).
_KINDS: dict[str, type[Tokenizer]] = {}


def load(path: str | os.PathLike) -> Tokenizer:
    """Load any tokenizer saved by :meth:`Tokenizer.save` (a Hugging Face ``tokenizer.json`` for
    BPE, WordPiece and Unigram; our own small JSON for characters and words)."""
    return Tokenizer.load(path)


__all__ = ["Tokenizer", "as_texts", "check_ids", "check_special_tokens", "check_vocab_size", "load"]
