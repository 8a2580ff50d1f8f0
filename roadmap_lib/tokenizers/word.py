"""Whole words as tokens: the vocabulary of the book's small word-level models (chapters 05, 06, 08).

Ids ``0 .. k-1`` are the special tokens, in the order given; then come the words, in the order
given (duplicates and empty strings dropped, as are words equal to a special token). ``encode``
splits on whitespace and gives one id per word: a special token written literally maps to itself,
any other word is first normalised (e.g. :func:`normalize_word`: lower case, surrounding
punctuation stripped) and then looked up, unknown words becoming ``unk_token``. A chapter's
vocabulary is a thin subclass that fixes its special tokens and adds its own conventions
(``[CLS] ... [SEP]`` and padding for BERT, ``<eos>`` handling for translation).

The ids of a vocabulary depend only on its token list (``itos``), which is what a checkpoint's
JSON record stores: ``WordTokenizer(record["vocab"], special_tokens=...)`` rebuilds it exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from .base import Tokenizer, as_texts, check_ids, check_special_tokens, check_vocab_size

PUNCTUATION = ".,;:!?\"'()[]"


def normalize_word(word: str) -> str:
    """The token form of a whitespace word: lower case, surrounding punctuation stripped."""
    return word.lower().strip(PUNCTUATION)


#: The normalisations a saved file can name (a function is stored by its name here).
NORMALIZERS: dict[str, Callable[[str], str]] = {"normalize_word": normalize_word}


def frequent_words(text: str | Iterable[str], size: int,
                   normalize: Callable[[str], str] | None = None) -> list[str]:
    """The ``size`` most frequent whitespace words of ``text`` (a string or an iterable of them,
    such as sentences), each passed through ``normalize`` first; ties broken alphabetically, the
    empty word (all punctuation) dropped."""
    counts = Counter(normalize(w) if normalize else w for t in as_texts(text) for w in t.split())
    counts.pop("", None)
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]


class WordTokenizer(Tokenizer):
    """Special tokens first, then words; one id per whitespace word.

    ``special_tokens``: distinct strings, ids ``0 ..``; ``unk_token``: one of them, the id of
    every word not in the vocabulary (None: such a word raises ValueError); ``normalize``: applied
    to each word before lookup (None: words are looked up as written); ``literal_specials``: the
    special tokens recognised when written in the text (default: all of them).
    """

    name = "word"
    kind = "Word"

    def __init__(self, words: Iterable[str] = (), special_tokens: Iterable[str] = ("<unk>",),
                 unk_token: str | None = "<unk>", normalize: Callable[[str], str] | None = None,
                 literal_specials: Iterable[str] | None = None):
        specials = check_special_tokens(special_tokens)
        if unk_token is not None and unk_token not in specials:
            raise ValueError(f"unk_token: expected one of the special tokens {specials}, "
                             f"got {unk_token!r}")
        literal = specials if literal_specials is None else list(literal_specials)
        if not set(literal) <= set(specials):
            raise ValueError(f"literal_specials: expected special tokens of {specials}, got "
                             f"{sorted(set(literal) - set(specials))}")
        if normalize is not None and not callable(normalize):
            raise TypeError(f"normalize: expected a function str -> str or None, got "
                            f"{type(normalize).__name__}")
        self.special_tokens, self.unk_token, self.normalize = specials, unk_token, normalize
        self.literal_specials = frozenset(literal)
        self._set_vocab(words)

    def _set_vocab(self, words: Iterable[str]) -> None:
        if isinstance(words, str):
            raise TypeError("words: expected an iterable of words, got a str")
        words = list(words)
        bad = [w for w in words if not isinstance(w, str)]
        if bad:
            raise TypeError(f"words: expected strings, got an item of type {type(bad[0]).__name__}")
        specials = set(self.special_tokens)
        self.itos = self.special_tokens + [w for w in dict.fromkeys(words) if w and w not in specials]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.unk_id = None if self.unk_token is None else self.stoi[self.unk_token]

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def train(self, text, vocab_size: int, **kwargs) -> WordTokenizer:
        """Keep the ``vocab_size - len(special_tokens)`` most frequent (normalised) words of
        ``text`` (a string or an iterable of strings); ties alphabetical."""
        n = len(self.special_tokens)
        check_vocab_size(vocab_size, n + 1, f"{n} special tokens and one word")
        self._set_vocab(frequent_words(text, vocab_size - n, self.normalize))
        return self

    def word_id(self, word: str) -> int:
        """The id of one whitespace word."""
        if word in self.literal_specials:
            return self.stoi[word]
        i = self.stoi.get(self.normalize(word) if self.normalize else word, self.unk_id)
        if i is None:
            raise ValueError(f"text: word {word!r} is not in the vocabulary (and there is no "
                             f"unk_token)")
        return i

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        return [self.word_id(w) for w in text.split()]

    def decode(self, ids, *, stop_at: str | None = None, skip: Iterable[str] = ()) -> str:
        """The tokens of ``ids`` joined by spaces, up to (not including) the first ``stop_at``
        token, leaving out the tokens in ``skip``."""
        stop = None if stop_at is None else self.stoi[stop_at]
        skipped = {self.stoi[s] for s in skip}
        words = []
        for i in check_ids(ids, len(self.itos)):
            if i == stop:
                break
            if i not in skipped:
                words.append(self.itos[i])
        return " ".join(words)

    def id_to_token(self, i: int) -> str:
        return self.itos[i]

    def to_dict(self) -> dict:
        names = [k for k, f in NORMALIZERS.items() if f is self.normalize]
        if self.normalize is not None and not names:
            raise ValueError(f"normalize: {self.normalize!r} cannot be saved; add it to "
                             f"roadmap_lib.tokenizers.word.NORMALIZERS")
        return {"type": "Word", "special_tokens": self.special_tokens, "unk_token": self.unk_token,
                "literal_specials": sorted(self.literal_specials),
                "normalize": names[0] if names else None, "vocab": self.itos}

    @classmethod
    def from_dict(cls, d: dict) -> WordTokenizer:
        name = d.get("normalize")
        if name is not None and name not in NORMALIZERS:
            raise ValueError(f"normalize: unknown normalisation {name!r} (known: "
                             f"{sorted(NORMALIZERS)})")
        # A chapter's subclass fixes its arguments in its own __init__: bypass it, the file says
        # everything.
        tok = cls.__new__(cls)
        WordTokenizer.__init__(tok, d["vocab"], d["special_tokens"], d.get("unk_token"),
                               NORMALIZERS.get(name), d.get("literal_specials"))
        if tok.itos != list(d["vocab"]):
            raise ValueError("vocab: expected the special tokens first, then distinct non-empty "
                             "words")
        return tok


__all__ = ["NORMALIZERS", "PUNCTUATION", "WordTokenizer", "frequent_words", "normalize_word"]
