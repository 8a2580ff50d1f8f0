"""Characters as tokens: the smallest vocabulary that can spell any text it was trained on.

With an ``unk_token`` (the default, ``"<unk>"``, id 0) a character never seen in training encodes
as that token; with ``unk_token=None`` the vocabulary is exactly the characters, in sorted order,
and an unseen character raises ValueError. The latter is the vocabulary of the character-level
language models (:class:`roadmap_lib.data.CharVocab`, the shipped ``gpt-char-jargon``).
"""

from __future__ import annotations

from .base import Tokenizer, as_texts, check_ids, check_vocab_size


class CharTokenizer(Tokenizer):
    """One token per character seen in training, plus an ``unk`` token for the rest (unless
    ``unk_token`` is None).

    ``vocab_size`` in :meth:`train` is an upper bound: the most frequent characters are kept
    (ties by character), then sorted; ``itos`` lists the tokens in id order, ``stoi`` inverts it.
    """

    name = "char"
    kind = "Char"

    def __init__(self, unk_token: str | None = "<unk>"):
        self.unk_token = unk_token
        self.itos: list[str] = []
        self.stoi: dict[str, int] = {}

    def _set_vocab(self, itos: list[str]) -> None:
        n_unk = self.unk_token is not None
        if n_unk and itos[:1] != [self.unk_token]:
            raise ValueError(f"vocab: expected the unknown token {self.unk_token!r} first, "
                             f"got {itos[:1]}")
        bad = [c for c in itos[n_unk:] if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"vocab: expected single characters, got {bad[0]!r}")
        if len(set(itos)) != len(itos):
            raise ValueError("vocab: expected distinct characters, got repeats")
        self.itos = list(itos)
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def train(self, text, vocab_size: int = 1_000_000, **kwargs) -> CharTokenizer:
        if self.unk_token is None:
            check_vocab_size(vocab_size, 1, "one character")
        else:
            check_vocab_size(vocab_size, 2, "the unknown token and one character")
        counts: dict[str, int] = {}
        for t in as_texts(text):
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        n_unk = self.unk_token is not None
        kept = sorted(counts, key=lambda c: (-counts[c], c))[: vocab_size - n_unk]
        self._set_vocab([self.unk_token] * n_unk + sorted(kept))
        return self

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        if self.unk_token is not None:
            return [self.stoi.get(c, 0) for c in text]
        try:
            return [self.stoi[c] for c in text]
        except KeyError as err:
            raise ValueError(f"text: character {err.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        return "".join(self.itos[i] for i in check_ids(ids, self.vocab_size))

    def id_to_token(self, i: int) -> str:
        return self.itos[i]

    def to_dict(self) -> dict:
        return {"type": "Char", "unk_token": self.unk_token, "vocab": self.itos}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        tok = cls(d.get("unk_token", "<unk>"))
        tok._set_vocab(list(d["vocab"]))
        return tok


__all__ = ["CharTokenizer"]
