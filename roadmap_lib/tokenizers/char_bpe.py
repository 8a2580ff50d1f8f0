"""Character-level BPE with byte fallback, the scheme of SentencePiece and Llama 2's tokenizer.

Byte-level BPE (:mod:`.bpe`) starts from the 256 bytes, so nothing is ever unknown. This one starts
from *characters*: its base vocabulary is the characters seen in training, and merges join
characters into longer pieces. A character outside that alphabet is then either ``<unk>`` (lost)
or, with ``byte_fallback=True``, spelled as its UTF-8 bytes with the 256 tokens ``<0x00>`` ...
``<0xFF>``, which are used for nothing else. Decoding turns a run of byte tokens back into bytes
and decodes them as UTF-8; a run that is not valid UTF-8 becomes one U+FFFD per byte token.

Text is normalised as Llama 2's ``tokenizer.json`` does: a ``▁`` (U+2581) is put in front and every
space becomes ``▁``, and the whole normalised text is one sequence for the merges (no
pre-tokeniser). Encoding starts from one symbol per character (or its byte tokens) and merges, as
long as any adjacent pair is a merge, the pair of lowest rank, leftmost first.

Ids: ``<unk>`` is 0; with byte fallback the byte tokens are 1..256; then the alphabet (most frequent
character first, ties by code point), then the merges in the order learned. Given the same vocabulary
and merges, ``encode`` and ``decode`` equal Hugging Face ``tokenizers``' ``models.BPE(...,
byte_fallback=True)`` with that normaliser and Llama 2's decoder (:meth:`CharBPETokenizer.to_hf_dict`
builds it; ``tests/test_tokenizers_char_bpe.py`` compares them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise

from .base import Tokenizer, as_texts, check_ids, check_vocab_size

SPACE = "\u2581"  # ▁, SentencePiece's visible space
UNK = "<unk>"
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
_BYTE_OF = {t: b for b, t in enumerate(BYTE_TOKENS)}


def normalize(text: str) -> str:
    """Llama 2's normaliser: prepend ``▁`` and replace every space by ``▁``."""
    return SPACE + text.replace(" ", SPACE)


def _merge_all(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    """Replace every occurrence of ``pair`` in ``symbols``, left to right, without overlaps."""
    out, i = [], 0
    while i < len(symbols):
        if i < len(symbols) - 1 and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


class CharBPETokenizer(Tokenizer):
    """Character-level BPE; unknown characters become byte tokens (``byte_fallback``) or ``<unk>``."""

    name = "char_bpe"
    kind = "CharBPE"

    def __init__(self, byte_fallback: bool = True):
        if not isinstance(byte_fallback, bool):
            raise TypeError(f"byte_fallback: expected a bool, got {type(byte_fallback).__name__}")
        self.byte_fallback = byte_fallback
        self.vocab: dict[str, int] = {}
        self.merges: list[tuple[str, str]] = []
        self._reset()

    def _reset(self) -> None:
        self.itos = {i: t for t, i in self.vocab.items()}
        self._rank = {pair: r for r, pair in enumerate(self.merges)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    # -- training
    def train(self, text: str | Iterable[str], vocab_size: int) -> CharBPETokenizer:
        """Learn the alphabet (every character of ``text``) and ``vocab_size`` minus the rest merges.

        Words are the normalised text cut before each ``▁``, so no learned piece spans two words;
        each merge joins the most frequent adjacent pair (ties: the pair that sorts first).
        """
        words: Counter = Counter()
        for t in as_texts(text):
            words.update(SPACE + w for w in t.split(" ") if w)
        chars: Counter = Counter()
        for w, c in words.items():
            for ch in w:
                chars[ch] += c
        alphabet = sorted(chars, key=lambda ch: (-chars[ch], ch))
        fixed = 1 + 256 * self.byte_fallback + len(alphabet)
        check_vocab_size(vocab_size, fixed, f"<unk>{' + 256 byte tokens' if self.byte_fallback else ''}"
                                            f" + {len(alphabet)} characters")
        split = {w: list(w) for w in words}
        stats: Counter = Counter()  # pair -> weighted count, updated only where a merge applies
        where: dict[tuple[str, str], set[str]] = {}
        for w, symbols in split.items():
            for pair in pairwise(symbols):
                stats[pair] += words[w]
                where.setdefault(pair, set()).add(w)
        merges: list[tuple[str, str]] = []
        while fixed + len(merges) < vocab_size:
            stats = +stats  # drop pairs whose count fell to 0
            if not stats:
                break
            best = min(stats, key=lambda p: (-stats[p], p))
            merges.append(best)
            for w in where.pop(best):
                old = split[w]
                for pair in pairwise(old):
                    stats[pair] -= words[w]
                split[w] = new = _merge_all(old, best)
                for pair in pairwise(new):
                    stats[pair] += words[w]
                    where.setdefault(pair, set()).add(w)
        tokens = [UNK] + (BYTE_TOKENS if self.byte_fallback else []) + alphabet + [a + b for a, b in merges]
        self.vocab = {}
        for t in tokens:  # a merged piece may equal an earlier token: it keeps its first id
            self.vocab.setdefault(t, len(self.vocab))
        self.merges = merges
        self._reset()
        return self

    @classmethod
    def from_vocab(cls, vocab: dict[str, int], merges: Sequence[tuple[str, str]],
                   byte_fallback: bool = True) -> CharBPETokenizer:
        """A tokenizer from a vocabulary (token -> id, with ``<unk>``, and with the 256 byte tokens
        when ``byte_fallback``) and merges in rank order; every merge's parts and result must be
        in the vocabulary."""
        tok = cls(byte_fallback)
        if UNK not in vocab:
            raise ValueError(f"vocab: expected the token {UNK!r}, it has none")
        missing = [t for t in BYTE_TOKENS if t not in vocab] if byte_fallback else []
        if missing:
            raise ValueError(f"vocab: byte_fallback=True needs the 256 byte tokens, {len(missing)} are "
                             f"missing (first: {missing[0]!r})")
        for n, pair in enumerate(merges, 1):
            if len(pair) != 2 or any(p not in vocab for p in pair) or pair[0] + pair[1] not in vocab:
                raise ValueError(f"merges: merge {n} {pair!r}: expected two tokens of vocab whose "
                                 f"concatenation is in vocab")
        tok.vocab, tok.merges = dict(vocab), [tuple(p) for p in merges]
        tok._reset()
        return tok

    # -- encoding
    def _symbols(self, text: str) -> list[str]:
        out = []
        for ch in text:
            if ch in self.vocab:
                out.append(ch)
            elif self.byte_fallback:
                out.extend(BYTE_TOKENS[b] for b in ch.encode("utf-8"))
            else:
                out.append(UNK)
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (normalised first)."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        if not self.vocab:
            raise ValueError("the tokenizer has no vocabulary yet: train it or build it with from_vocab")
        if not text:
            return []  # as tokenizers: the normaliser adds no ▁ to an empty string
        symbols = self._symbols(normalize(text))
        never = len(self.merges)
        while len(symbols) > 1:
            ranks = [self._rank.get(pair, never) for pair in pairwise(symbols)]
            best = min(ranks)
            if best == never:
                break
            symbols = _merge_all(symbols, self.merges[best])
        return [self.vocab[s] for s in symbols]

    # -- decoding
    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``: byte tokens back to bytes (one U+FFFD per byte token of a run that is not
        valid UTF-8), ``▁`` back to spaces, and the leading space the normaliser added removed."""
        ids = check_ids(ids, max(self.itos, default=-1) + 1)
        pieces, run = [], bytearray()
        n_run = 0
        for i in ids:
            if i not in self.itos:
                raise ValueError(f"ids: token id {i} is not in the vocabulary")
            token = self.itos[i]
            if self.byte_fallback and token in _BYTE_OF:
                run.append(_BYTE_OF[token])
                n_run += 1
                continue
            if run:
                pieces.append(self._bytes_text(bytes(run), n_run))
                run, n_run = bytearray(), 0
            pieces.append(token.replace(SPACE, " "))
        if run:
            pieces.append(self._bytes_text(bytes(run), n_run))
        text = "".join(pieces)
        return text.removeprefix(" ")

    @staticmethod
    def _bytes_text(data: bytes, n_tokens: int) -> str:
        try:
            return data.decode("utf-8")  # a ▁ spelled in bytes stays ▁, as in tokenizers
        except UnicodeDecodeError:
            return "\ufffd" * n_tokens

    def id_to_token(self, i: int) -> str:
        if i not in self.itos:
            raise ValueError(f"i: token id {i} is not in the vocabulary")
        return self.itos[i]

    # -- files
    def to_dict(self) -> dict:
        return {"type": self.kind, "byte_fallback": self.byte_fallback, "vocab": self.vocab,
                "merges": [list(p) for p in self.merges]}

    @classmethod
    def from_dict(cls, d: dict) -> CharBPETokenizer:
        if d.get("type") != cls.kind:
            raise ValueError(f"type: expected {cls.kind!r}, got {d.get('type')!r}")
        return cls.from_vocab(d["vocab"], [tuple(p) for p in d["merges"]], bool(d["byte_fallback"]))

    def to_hf_dict(self) -> dict:
        """The same tokenizer as a Hugging Face ``tokenizer.json``: Llama 2's normaliser and decoder
        around ``models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=...)``."""
        return {
            "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": SPACE},
                {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]},
            "pre_tokenizer": None, "post_processor": None,
            "decoder": {"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
            "model": {"type": "BPE", "dropout": None, "unk_token": UNK, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": self.byte_fallback,
                      "ignore_merges": False, "vocab": self.vocab,
                      "merges": [[a, b] for a, b in self.merges]},
        }


__all__ = ["BYTE_TOKENS", "SPACE", "CharBPETokenizer", "normalize"]
