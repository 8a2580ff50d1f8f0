"""Byte-level BPE (Sennrich et al. 2016) with GPT-2 pre-tokenisation (Radford et al. 2019).

Text is first cut by a regular expression into pre-tokens (words with their leading space, runs
of digits, punctuation, whitespace); BPE then works inside each pre-token on its UTF-8 bytes, so
any string round-trips and no merge crosses a word boundary. Special tokens (``<|endoftext|>``)
are cut out before that: they are never split and never merged with their neighbours.

Training counts pre-tokens once, then repeatedly merges the most frequent adjacent pair. The
naive loop (:func:`naive_merges`) recounts every pair after every merge; :func:`train_merges`
keeps the counts and updates only the words that contain the merged pair, with a lazy max-heap.
Ties (equal counts) go to the smaller pair, comparing bytes in the order of their GPT-2
characters, which is the order Hugging Face ``tokenizers`` uses: so the two trainers learn the
same merges in the same order.

Ids: 0..255 are the bytes, 256.. the merges in the order learned, then the special tokens. A
loaded GPT-2 / ``tokenizer.json`` vocabulary keeps its own ids.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from itertools import pairwise, repeat

import regex

from .base import Tokenizer, as_texts, check_ids, check_special_tokens, check_vocab_size
from .byte_level import (
    BYTE_TO_CHAR,
    GPT2_PATTERN,
    parse_pre_tokenizer,
    parse_vocab,
    pre_tokenizer_dict,
    to_chars,
)

_SPACE = regex.compile(r"\s+")
# Tie-break order of the bytes: their GPT-2 characters sorted by code point.
BYTE_RANK = {b: r for r, b in enumerate(sorted(range(256), key=lambda b: ord(BYTE_TO_CHAR[b])))}


def count_words(texts: Iterable[str], pattern: str = GPT2_PATTERN, specials=()) -> Counter:
    """Pre-token counts: ``{utf8 bytes of a pre-token: occurrences}``; special tokens dropped."""
    pat = regex.compile(pattern)
    split = regex.compile("|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)))
    counts: Counter = Counter()
    for text in texts:
        for part in split.split(text) if specials else [text]:
            counts.update(pat.findall(part))
    return Counter({w.encode("utf-8"): c for w, c in counts.items()})


def _merge_word(w: list[int], a: int, b: int, new: int) -> list[tuple[tuple[int, int], int]]:
    """Replace every (a, b) in ``w`` by ``new``, left to right; return the pair-count changes."""
    changes, i = [], 0
    while i < len(w) - 1:
        if w[i] == a and w[i + 1] == b:
            if i > 0:
                changes += [((w[i - 1], a), -1), ((w[i - 1], new), 1)]
            w[i : i + 2] = [new]
            if i < len(w) - 1:
                changes += [((b, w[i + 1]), -1), ((new, w[i + 1]), 1)]
        i += 1
    return changes


def _key(i: int) -> int:
    return BYTE_RANK[i] if i < 256 else i


def train_merges(word_counts: dict[bytes, int], n_merges: int, min_frequency: int = 0,
                 progress=None) -> list[tuple[int, int]]:
    """Incremental BPE training: the list of merged pairs; pair k creates token 256 + k."""
    words = [list(w) for w in word_counts]
    freq = list(word_counts.values())
    stats: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for wi, w in enumerate(words):
        for pair in pairwise(w):
            stats[pair] += freq[wi]
            where[pair].add(wi)
    heap = [(-c, _key(a), _key(b), a, b) for (a, b), c in stats.items()]
    heapq.heapify(heap)
    merges: list[tuple[int, int]] = []
    while len(merges) < n_merges and heap:
        neg, ka, kb, a, b = heapq.heappop(heap)
        count = stats.get((a, b), 0)
        if count != -neg:  # a stale entry: counts only fall, so push it back with the true one
            if count > 0:
                heapq.heappush(heap, (-count, ka, kb, a, b))
            continue
        if count < max(1, min_frequency):
            break
        new = 256 + len(merges)
        merges.append((a, b))
        del stats[(a, b)]
        touched = set()
        for wi in where.pop((a, b)):
            for pair, d in _merge_word(words[wi], a, b, new):
                if pair == (a, b):
                    continue
                stats[pair] += d * freq[wi]
                if d > 0:
                    where[pair].add(wi)
                    touched.add(pair)
        for pair in touched:
            heapq.heappush(heap, (-stats[pair], _key(pair[0]), _key(pair[1]), *pair))
        if progress is not None:
            progress.update(1)
    return merges


def naive_merges(word_counts: dict[bytes, int], n_merges: int, min_frequency: int = 0):
    """The textbook loop, for teaching and benchmarking: recount all pairs after every merge."""
    words = [list(w) for w in word_counts]
    freq = list(word_counts.values())
    merges = []
    for _ in range(n_merges):
        stats: dict[tuple[int, int], int] = defaultdict(int)
        for w, f in zip(words, freq):
            for pair in pairwise(w):
                stats[pair] += f
        if not stats:
            break
        a, b = min(stats, key=lambda p: (-stats[p], _key(p[0]), _key(p[1])))
        if stats[(a, b)] < max(1, min_frequency):
            break
        new = 256 + len(merges)
        merges.append((a, b))
        for w in words:
            _merge_word(w, a, b, new)
    return merges


class BPETokenizer(Tokenizer):
    """Byte-level BPE with GPT-2 pre-tokenisation and special tokens."""

    name = "bpe"
    kind = "BPE"

    def __init__(self, pattern: str = GPT2_PATTERN):
        self.pattern = pattern
        self._pat = regex.compile(pattern)
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        self.byte_ids = list(range(256))
        self.ranks: dict[tuple[int, int], tuple[int, int]] = {}  # pair -> (rank, merged id)
        self.special_tokens: dict[str, int] = {}
        self.ignore_merges = False  # Llama-3 style: a pre-token found whole in vocab is one token
        self.add_prefix_space = False
        self._reset()

    def _reset(self) -> None:
        self.inverse = {v: k for k, v in self.vocab.items()}
        self.id_to_special = {i: s for s, i in self.special_tokens.items()}
        specials = sorted(self.special_tokens, key=len, reverse=True)
        self._special_pat = regex.compile("(" + "|".join(map(regex.escape, specials)) + ")") \
            if specials else None
        self._cache: dict[str, list[int]] = {}
        self._rank_of = {pair: r for pair, (r, _) in self.ranks.items()}
        self._merged_id = {r: new for r, new in self.ranks.values()}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + len(self.special_tokens)

    # -- training
    def train(self, text, vocab_size: int, special_tokens=None, min_frequency: int = 0,
              verbose: bool = False, naive: bool = False) -> BPETokenizer:
        specials = check_special_tokens(special_tokens)
        check_vocab_size(vocab_size, 256 + len(specials),
                         f"256 bytes + {len(specials)} special tokens")
        counts = count_words(as_texts(text), self.pattern, specials)
        n_merges = vocab_size - 256 - len(specials)
        if naive:
            merges = naive_merges(counts, n_merges, min_frequency)
        else:
            from tqdm.auto import tqdm

            with tqdm(total=n_merges, desc="BPE merges", disable=not verbose) as bar:
                merges = train_merges(counts, n_merges, min_frequency, bar)
        self.vocab = {i: bytes([i]) for i in range(256)}
        self.byte_ids = list(range(256))
        self.ranks = {}
        for r, (a, b) in enumerate(merges):
            self.vocab[256 + r] = self.vocab[a] + self.vocab[b]
            self.ranks[(a, b)] = (r, 256 + r)
        self.special_tokens = {s: len(self.vocab) + k for k, s in enumerate(specials)}
        self._reset()
        return self

    @property
    def merges(self) -> list[tuple[int, int]]:
        return sorted(self.ranks, key=lambda p: self.ranks[p][0])

    # -- encoding
    def _bpe(self, piece: str) -> list[int]:
        data = piece.encode("utf-8")
        if self.ignore_merges and data in self.inverse:
            return [self.inverse[data]]
        ids = [self.byte_ids[b] for b in data]
        get, never = self._rank_of.get, repeat(1 << 62)
        while len(ids) > 1:
            rs = list(map(get, pairwise(ids), never))  # rank of each adjacent pair
            r = min(rs)
            if r == 1 << 62:
                break
            new, out, start, j = self._merged_id[r], [], 0, rs.index(r)
            while True:  # merge every occurrence, left to right, without overlaps
                out += ids[start:j]
                out.append(new)
                start = j + 2
                try:
                    j = rs.index(r, start)
                except ValueError:
                    break
            ids = out + ids[start:]
        return ids

    def _encode_ordinary(self, text: str, out: list[int]) -> None:
        if self.add_prefix_space and text and not text.startswith(" "):
            text = " " + text
        cache = self._cache
        for piece in self._pat.findall(text):
            ids = cache.get(piece)
            if ids is None:
                ids = self._bpe(piece)
                if len(cache) < 1_000_000:
                    cache[piece] = ids
            out.extend(ids)

    def _allowed(self, allowed_special) -> set[str] | None:
        if allowed_special == "all":
            return set(self.special_tokens)
        if allowed_special in ("none", "none_raise"):
            return set()
        if isinstance(allowed_special, str) or not isinstance(allowed_special, Iterable):
            raise ValueError(  # noqa: TRY004 (mostly a string that is none of the three)
                "allowed_special: expected 'all', 'none', 'none_raise' or a set of special "
                f"tokens, got {allowed_special!r}")
        allowed = set(allowed_special)
        unknown = sorted(allowed - set(self.special_tokens))
        if unknown:
            raise ValueError(f"allowed_special: unknown special tokens {unknown}; this tokenizer "
                             f"has {sorted(self.special_tokens)}")
        return allowed

    def encode(self, text: str, allowed_special="all") -> list[int]:
        """Token ids of ``text``. ``allowed_special``: ``"all"`` (registered special tokens are
        recognised, as in ``tokenizers``), ``"none"`` (encoded as ordinary text),
        ``"none_raise"`` (a ValueError if one occurs) or a set of the registered ones."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        allowed = self._allowed(allowed_special)
        if allowed_special == "none_raise" and self._special_pat is not None:
            found = self._special_pat.search(text)
            if found:
                raise ValueError(f"text: contains the special token {found.group()!r} at "
                                 f"{found.start()}, and allowed_special='none_raise'")
        out: list[int] = []
        if not allowed:
            self._encode_ordinary(text, out)
            return out
        pat = self._special_pat if len(allowed) == len(self.special_tokens) else regex.compile(
            "(" + "|".join(map(regex.escape, sorted(allowed, key=len, reverse=True))) + ")")
        for k, part in enumerate(pat.split(text)):
            if k % 2:
                out.append(self.special_tokens[part])
            elif part:
                self._encode_ordinary(part, out)
        return out

    def encode_iter(self, lines: Iterable[str], allowed_special="all") -> Iterator[list[int]]:
        """Encode a stream (e.g. an open file) chunk by chunk, holding only an unfinished
        pre-token; the concatenated chunks equal ``encode`` of the whole text."""
        allowed = sorted(self._allowed(allowed_special), key=len, reverse=True)
        longest = max(map(len, allowed), default=1)
        split = regex.compile("|".join(map(regex.escape, allowed))) if allowed else None
        buf = ""
        for line in lines:
            buf += line
            # A special token may be starting in the last characters: cut before it.
            limit = len(buf)
            for q in range(max(0, len(buf) - longest + 1), len(buf)):
                if any(s.startswith(buf[q:]) for s in allowed):
                    limit = q
                    break
            start = 0
            if split is not None:
                for m in split.finditer(buf, 0, limit):
                    start = m.end()
            before = last = None
            for m in self._pat.finditer(buf, start, limit):
                before, last = last, m
            cut = start if last is None else last.start()  # the last pre-token may still grow
            # So may a run of whitespace before it: "\n" + "\n" + "ab" is the pre-tokens
            # "\n", "\n", "ab", but "\n\n" alone is one pre-token (\s+(?!\S) looks ahead).
            if before is not None and _SPACE.fullmatch(before.group()):
                cut = before.start()
            if cut > 0:
                yield self.encode(buf[:cut], allowed_special)
                buf = buf[cut:]
        if buf:
            yield self.encode(buf, allowed_special)

    # -- decoding
    def decode_bytes(self, ids) -> bytes:
        ids = check_ids(ids, max(max(self.vocab), max(self.id_to_special, default=-1)) + 1)
        parts = []
        for i in ids:
            if i in self.vocab:
                parts.append(self.vocab[i])
            elif i in self.id_to_special:
                parts.append(self.id_to_special[i].encode("utf-8"))
            else:
                raise ValueError(f"ids: token id {i} is not in the vocabulary")
        return b"".join(parts)

    def decode(self, ids, errors: str = "replace") -> str:
        """Text of ``ids``. Token boundaries need not fall on character boundaries, so the bytes
        may not be valid UTF-8: with ``errors="replace"`` (the default, as ``tokenizers`` does)
        each invalid sequence becomes U+FFFD; ``errors="strict"`` raises ValueError."""
        data = self.decode_bytes(ids)
        try:
            return data.decode("utf-8", errors=errors)
        except UnicodeDecodeError as err:
            raise ValueError(f"ids: decode to bytes that are not valid UTF-8 ({err})") from None

    def id_to_token(self, i: int) -> str:
        """A token as text; a token that is not whole UTF-8 characters shows its bytes, <0xE4>."""
        if i in self.id_to_special:
            return self.id_to_special[i]
        try:
            return self.vocab[i].decode("utf-8")
        except UnicodeDecodeError:
            return "".join(f"<0x{b:02X}>" for b in self.vocab[i])

    # -- files
    @classmethod
    def from_vocab(cls, vocab: dict[str, int], merges: list[tuple[str, str]],
                   special_tokens: dict[str, int] | None = None, pattern: str = GPT2_PATTERN,
                   where: str = "vocab") -> BPETokenizer:
        """A tokenizer from a vocabulary (token -> id) and merges (in rank order) spelled in
        GPT-2's byte characters, as its files spell them; the ids are kept."""
        tok = cls(pattern)
        specials = dict(special_tokens or {})
        tok.vocab, tok.byte_ids, tok.ranks = parse_vocab(vocab, merges, specials, where)
        tok.special_tokens = specials
        tok._reset()
        return tok

    def to_dict(self) -> dict:
        """A Hugging Face ``tokenizer.json`` (ByteLevel pre-tokenizer and decoder, BPE model)."""
        added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True}
                 for s, i in sorted(self.special_tokens.items(), key=lambda kv: kv[1])]
        return {
            "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": None, "pre_tokenizer": pre_tokenizer_dict(self.pattern, self.add_prefix_space),
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                        "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": False, "ignore_merges": self.ignore_merges,
                      "vocab": {to_chars(t): i for i, t in sorted(self.vocab.items())},
                      "merges": [[to_chars(self.vocab[a]), to_chars(self.vocab[b])]
                                 for a, b in self.merges]},
        }

    @classmethod
    def from_dict(cls, d: dict) -> BPETokenizer:
        """Read a ``tokenizer.json`` with a byte-level BPE model (ours, GPT-2's, Llama 3's)."""
        model = d.get("model") or {}
        if model.get("type") != "BPE":
            raise ValueError(f"model.type: expected 'BPE', got {model.get('type')!r}")
        for opt in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
            if model.get(opt):
                raise ValueError(f"model.{opt}: not supported (got {model[opt]!r})")
        pattern, prefix = parse_pre_tokenizer(d.get("pre_tokenizer"))
        merges = []
        for n, m in enumerate(model.get("merges", []), 1):
            pair = m.split(" ") if isinstance(m, str) else list(m)
            if len(pair) != 2 or not all(isinstance(x, str) and x for x in pair):
                raise ValueError(f"model.merges: merge {n}: expected two tokens, got {m!r}")
            merges.append(tuple(pair))
        specials = {t["content"]: t["id"] for t in d.get("added_tokens", [])}
        tok = cls.from_vocab(model.get("vocab", {}), merges, specials, pattern, "model.vocab")
        tok.ignore_merges = bool(model.get("ignore_merges", False))
        tok.add_prefix_space = prefix
        return tok


__all__ = ["BYTE_RANK", "BPETokenizer", "count_words", "naive_merges", "train_merges"]
