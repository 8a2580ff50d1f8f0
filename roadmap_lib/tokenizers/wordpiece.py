"""WordPiece (Schuster & Nakajima 2012), the subword scheme of BERT.

Pre-tokenisation as BERT's: split on whitespace and make every punctuation character a word of its
own. Inside a word, a piece that does not start the word is written with the ``##`` prefix
(``tokenization`` -> ``token ##ization``).

Training starts from the characters and, like BPE, merges adjacent pairs, but it picks the pair
that most raises the likelihood of the training data under a unigram model of the pieces. With
``N`` pieces in the corpus, merging ``a b`` gains about

    count(ab) * log(count(ab) * N / (count(a) * count(b)))

(count-weighted pointwise mutual information): a pair whose parts nearly always occur together
beats a pair of frequent parts that meet by chance, but only if it is frequent enough to matter.
(The ratio ``count(ab) / (count(a) count(b))`` alone, sometimes quoted as *the* WordPiece score,
rates every pair of words seen once at 1, the maximum, and fills the vocabulary with them.)
Counts are updated incrementally. A lazy max-heap holds the scores: a merge raises the score of
every pair containing ``a`` or ``b`` (their counts fell), so those are pushed again; ``N`` falls
with every merge, which lowers all scores, so a popped score is recomputed and accepted only if
it still beats the best remaining bound.

Encoding is greedy longest-match-first, left to right; a word with a character no piece covers
(or longer than ``max_input_chars_per_word``) becomes the single token ``[UNK]``, as in BERT.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict
from itertools import pairwise

import regex

from .base import Tokenizer, as_texts, check_ids, check_special_tokens, check_vocab_size

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# BERT: whitespace separates words; every punctuation character (Unicode P*, plus ASCII symbols
# such as $ + < = > ^ ` | ~) is a word of its own.
_PUNCT = r"\p{P}!-/:-@\[-`{-~"
BERT_PATTERN = regex.compile(rf"[^\s{_PUNCT}]+|[{_PUNCT}]")


def bert_pre_tokenize(text: str) -> list[str]:
    return BERT_PATTERN.findall(text)


class WordPieceTokenizer(Tokenizer):
    name = "wordpiece"
    kind = "WordPiece"

    def __init__(self, prefix: str = "##", unk_token: str = "[UNK]",
                 max_input_chars_per_word: int = 100):
        self.prefix, self.unk_token = prefix, unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        self.vocab: dict[str, int] = {}
        self.itos: list[str] = []
        self.special_tokens: list[str] = []

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def _set_vocab(self, itos: list[str], specials: list[str]) -> None:
        self.itos = list(itos)
        self.vocab = {t: i for i, t in enumerate(self.itos)}
        if self.unk_token not in self.vocab:
            raise ValueError(f"vocab: the unknown token {self.unk_token!r} is missing")
        unknown = [t for t in specials if t not in self.vocab]
        if unknown:
            raise ValueError(f"special_tokens: {unknown} are not in the vocabulary")
        self.special_tokens = list(specials)
        longest_first = sorted(specials, key=len, reverse=True)
        self._special_pat = regex.compile("(" + "|".join(map(regex.escape, longest_first)) + ")")
        self._cache: dict[str, list[int]] = {}

    def train(self, text, vocab_size: int, special_tokens=BERT_SPECIALS, min_frequency: int = 2,
              verbose: bool = False):
        """Learn ``vocab_size`` pieces; pairs seen fewer than ``min_frequency`` times are never
        merged."""
        specials = check_special_tokens(special_tokens)
        if self.unk_token not in specials:
            specials = [self.unk_token] + specials
        words = Counter()
        for t in as_texts(text):
            words.update(bert_pre_tokenize(t))
        p = self.prefix
        alphabet = sorted({w[0] for w in words} | {p + c for w in words for c in w[1:]})
        check_vocab_size(vocab_size, len(specials) + len(alphabet),
                         f"{len(specials)} special tokens + {len(alphabet)} characters")
        itos = specials + alphabet
        sid = {t: i for i, t in enumerate(itos)}
        seqs = [[sid[w[0]]] + [sid[p + c] for c in w[1:]] for w in words]
        freq = list(words.values())
        count = defaultdict(int)  # token -> occurrences
        pair = defaultdict(int)  # (a, b) -> occurrences
        where = defaultdict(set)  # (a, b) -> words that contain it
        pairs_of = defaultdict(set)  # token -> pairs it is part of
        for wi, s in enumerate(seqs):
            for t in s:
                count[t] += freq[wi]
            for ab in pairwise(s):
                pair[ab] += freq[wi]
                where[ab].add(wi)
                pairs_of[ab[0]].add(ab)
                pairs_of[ab[1]].add(ab)

        total = sum(count.values())

        def score(ab):
            c = pair[ab]
            return c * math.log(c * total / (count[ab[0]] * count[ab[1]]))

        heap = [(-score(ab), ab) for ab in pair]
        heapq.heapify(heap)
        from tqdm.auto import tqdm

        bar = tqdm(total=vocab_size - len(itos), desc="WordPiece merges", disable=not verbose)
        while len(itos) < vocab_size and heap:
            _, ab = heapq.heappop(heap)
            if pair.get(ab, 0) < max(1, min_frequency):
                continue  # merged away, or too rare (a pair's count never grows back)
            s = score(ab)
            if heap and s < -heap[0][0]:  # its bound slipped below the next one: re-queue
                heapq.heappush(heap, (-s, ab))
                continue
            a, b = ab
            new = len(itos)
            itos.append(itos[a] + itos[b][len(p):])
            touched = set()
            for wi in where.pop(ab):
                s = seqs[wi]
                i, out, merged = 0, [], 0
                while i < len(s):
                    if i < len(s) - 1 and s[i] == a and s[i + 1] == b:
                        out.append(new)
                        merged += 1
                        i += 2
                    else:
                        out.append(s[i])
                        i += 1
                if not merged:
                    continue
                f = freq[wi]
                for xy in pairwise(s):  # retract the word's old pairs, add its new ones
                    pair[xy] -= f
                for xy in pairwise(out):
                    pair[xy] += f
                    where[xy].add(wi)
                    pairs_of[xy[0]].add(xy)
                    pairs_of[xy[1]].add(xy)
                    touched.add(xy)
                count[a] -= merged * f
                total -= merged * f
                count[b] -= merged * f
                count[new] += merged * f
                seqs[wi] = out
            del pair[ab]
            for t in (a, b):  # their counts fell: every pair with them scores higher now
                pairs_of[t] = {xy for xy in pairs_of[t] if pair.get(xy, 0) > 0}
            for xy in touched | pairs_of[a] | pairs_of[b]:
                if pair.get(xy, 0) > 0:
                    heapq.heappush(heap, (-score(xy), xy))
            bar.update(1)
        bar.close()
        self._set_vocab(itos, specials)
        return self

    def _encode_word(self, word: str) -> list[int]:
        if len(word) > self.max_input_chars_per_word:
            return [self.vocab[self.unk_token]]
        out, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    out.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:  # no piece covers word[start]: the whole word is unknown
                return [self.vocab[self.unk_token]]
            start = end
        return out

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        out = []
        for k, part in enumerate(self._special_pat.split(text)):
            if k % 2:  # a special token: never split
                out.append(self.vocab[part])
                continue
            for w in bert_pre_tokenize(part):
                ids = self._cache.get(w)
                if ids is None:
                    ids = self._cache[w] = self._encode_word(w)
                out.extend(ids)
        return out

    def decode(self, ids) -> str:
        """Pieces joined by spaces, ``##`` pieces glued to the previous one. Lossy: BERT's
        pre-tokenisation forgets whitespace, so ``"a, b"`` comes back as ``"a , b"``."""
        out = ""
        for i in check_ids(ids, self.vocab_size):
            t = self.itos[i]
            out += t[len(self.prefix):] if t.startswith(self.prefix) else (" " + t if out else t)
        return out

    def id_to_token(self, i: int) -> str:
        return self.itos[i]

    def to_dict(self) -> dict:
        """A Hugging Face ``tokenizer.json`` (BertPreTokenizer, WordPiece model)."""
        specials = self.special_tokens
        return {
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": self.vocab[t], "content": t, "single_word": False,
                              "lstrip": False, "rstrip": False, "normalized": False,
                              "special": True} for t in specials],
            "normalizer": None, "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": None,
            "decoder": {"type": "WordPiece", "prefix": self.prefix, "cleanup": True},
            "model": {"type": "WordPiece", "unk_token": self.unk_token,
                      "continuing_subword_prefix": self.prefix,
                      "max_input_chars_per_word": self.max_input_chars_per_word,
                      "vocab": dict(self.vocab)},
        }

    @classmethod
    def from_dict(cls, d: dict) -> WordPieceTokenizer:
        model = d.get("model") or {}
        if model.get("type") != "WordPiece":
            raise ValueError(f"model.type: expected 'WordPiece', got {model.get('type')!r}")
        vocab = model.get("vocab", {})
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError("model.vocab: expected ids 0..n-1, each once")
        tok = cls(model.get("continuing_subword_prefix", "##"), model.get("unk_token", "[UNK]"),
                  model.get("max_input_chars_per_word", 100))
        specials = [t["content"] for t in d.get("added_tokens", [])]
        tok._set_vocab(sorted(vocab, key=vocab.get), specials)
        return tok
