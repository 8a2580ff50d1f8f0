"""The unigram language-model tokenizer (Kudo 2018), trained as SentencePiece does (Kudo &
Richardson 2018).

Spaces are part of the text: each becomes ``▁`` (U+2581), a ``▁`` is put in front of the text,
and every word starts at a ``▁`` (``"Hello world"`` -> ``▁Hello ▁world``), so decoding is exact.

A segmentation of a word into pieces ``x_1 .. x_n`` has probability ``prod p(x_i)``. Encoding
takes the most probable one (Viterbi, over the lattice of all pieces found in the word); *subword
regularisation* samples one with probability proportional to ``P(x)^alpha``.

Training, by EM: start from many candidate pieces (frequent substrings), then repeat
(1) E-step: the expected number of uses of each piece, by forward-backward over each word's
lattice; (2) M-step: new probabilities from those counts (with SentencePiece's Bayesian
``digamma`` update, which removes rarely used pieces); (3) prune: drop the quarter of pieces whose
removal costs least likelihood (roughly: how often a piece is used, times how much less likely
its best segmentation without it is). Stop within 10% of the target size and keep the most
probable pieces. Single characters are always kept.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import regex

from .base import Tokenizer, as_texts, check_ids, check_special_tokens, check_vocab_size

SPACE = "\u2581"  # ▁
UNK_PENALTY = 10.0  # an unknown character scores this far below the least likely piece


def sp_words(text: str) -> list[str]:
    """SentencePiece pre-tokenisation: spaces to ``▁``, one in front, a word starts at each ``▁``."""
    text = SPACE + text.replace(" ", SPACE)
    return regex.findall(f"{SPACE}[^{SPACE}]*", text)


def digamma(x: float) -> float:
    r = 0.0
    while x < 6:
        r -= 1 / x
        x += 1
    f = 1 / (x * x)
    return r + math.log(x) - 0.5 / x - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f / 240)))


def _logsumexp(xs: list[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


class UnigramTokenizer(Tokenizer):
    name = "unigram"
    kind = "Unigram"

    def __init__(self, max_piece_length: int = 16):
        self.max_piece_length = max_piece_length
        self.pieces: list[str] = []
        self.scores: list[float] = []  # log p(piece); 0.0 for the special tokens
        self.special_tokens: list[str] = ["<unk>"]

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def _set(self, pieces: list[str], scores: list[float], specials: list[str]) -> None:
        self.pieces, self.scores, self.special_tokens = list(pieces), list(scores), list(specials)
        self.piece_id = {p: i for i, p in enumerate(self.pieces)}
        normal = [s for p, s in zip(self.pieces, self.scores) if p not in self.special_tokens]
        self.unk_score = min(normal, default=0.0) - UNK_PENALTY
        longest = sorted(self.special_tokens, key=len, reverse=True)
        self._special_pat = regex.compile("(" + "|".join(map(regex.escape, longest)) + ")")
        self._cache: dict[str, list[int]] = {}
        self._lp = {p: s for p, s in zip(self.pieces, self.scores) if p not in self.special_tokens}

    # -- the lattice: every piece of the vocabulary that occurs in a word
    @staticmethod
    def _edges(word: str, logp: dict[str, float], maxlen: int):
        """ends[j] = [(i, piece, log p)] for every piece word[i:j] in ``logp``."""
        ends = [[] for _ in range(len(word) + 1)]
        for i in range(len(word)):
            for j in range(i + 1, min(len(word), i + maxlen) + 1):
                lp = logp.get(word[i:j])
                if lp is not None:
                    ends[j].append((i, word[i:j], lp))
        return ends

    @staticmethod
    def _viterbi(word, ends, unk_score):
        best = [0.0] + [-math.inf] * len(word)
        back: list = [None] * (len(word) + 1)
        for j in range(1, len(word) + 1):
            for i, piece, lp in ends[j]:
                if best[i] + lp > best[j]:
                    best[j], back[j] = best[i] + lp, (i, piece)
            if back[j] is None:  # no piece ends here: the character is unknown
                best[j], back[j] = best[j - 1] + unk_score, (j - 1, None)
        out, j = [], len(word)
        while j > 0:
            i, piece = back[j]
            out.append(piece)
            j = i
        return out[::-1], best[-1]

    # -- training
    def train(self, text, vocab_size: int, special_tokens=("<unk>", "<s>", "</s>"),
              seed_size: int = 1_000_000, shrink: float = 0.75, em_steps: int = 2,
              verbose: bool = False) -> UnigramTokenizer:
        specials = check_special_tokens(special_tokens)
        if not specials or specials[0] != "<unk>":
            specials = ["<unk>"] + [s for s in specials if s != "<unk>"]
        lines, words, chars = self._count(text)
        check_vocab_size(vocab_size, len(specials) + len(chars),
                         f"{len(specials)} special tokens + {len(chars)} characters")
        # Seeds: frequent substrings that are right-branching (not always followed by the same
        # character: the internal nodes of a suffix tree, which SentencePiece enumerates with a
        # suffix array), scored freq * length.
        sub = Counter()
        for w, c in words.items():
            for i in range(len(w)):
                for j in range(i + 2, min(len(w), i + self.max_piece_length) + 1):
                    sub[w[i:j]] += c
        longest_extension = defaultdict(int)
        for t, c in sub.items():
            if len(t) > 2:
                longest_extension[t[:-1]] = max(longest_extension[t[:-1]], c)
        seeds = sorted((p for p, c in sub.items() if c > 1 and longest_extension[p] < c),
                       key=lambda p: (-sub[p] * len(p), p))
        counts = {**{p: sub[p] * len(p) for p in seeds[:seed_size]}, **chars}
        total = sum(counts.values())
        logp = {p: math.log(c / total) for p, c in counts.items()}
        logp = self._fit(lines, words, chars, logp, vocab_size - len(specials), shrink, em_steps,
                         verbose)
        self._finish(logp, chars, vocab_size, specials)
        return self

    def shrink_to(self, text, vocab_size: int, shrink: float = 0.75, em_steps: int = 2,
                  verbose: bool = False) -> UnigramTokenizer:
        """Continue training (EM and pruning) from the current pieces down to ``vocab_size``:
        what training does on its way down from a larger vocabulary."""
        lines, words, chars = self._count(text)
        specials = self.special_tokens
        check_vocab_size(vocab_size, len(specials) + len(chars),
                         f"{len(specials)} special tokens + {len(chars)} characters")
        logp = dict(self._lp)
        floor = min(logp.values(), default=0.0)
        for ch in chars:
            logp.setdefault(ch, floor)
        logp = self._fit(lines, words, chars, logp, vocab_size - len(specials), shrink, em_steps,
                         verbose)
        self._finish(logp, chars, vocab_size, specials)
        return self

    @staticmethod
    def _count(text) -> tuple[Counter, Counter, Counter]:
        """Distinct lines (as tuples of words), words and characters, with their counts."""
        lines = Counter()
        for t in as_texts(text):
            lines.update(tuple(sp_words(line)) for line in t.splitlines())
        words, chars = Counter(), Counter()
        for line, c in lines.items():
            for w in line:
                words[w] += c
        for w, c in words.items():
            for ch in w:
                chars[ch] += c
        return lines, words, chars

    def _fit(self, lines, words, chars, logp, budget, shrink, em_steps, verbose):
        """EM, then prune, until at most 10% above ``budget`` (as SentencePiece)."""
        from tqdm.auto import tqdm

        bar = tqdm(desc="Unigram EM", disable=not verbose)
        while True:
            for _ in range(em_steps):
                logp = self._em_step(words, logp, chars)
                bar.update(1)
            if len(logp) <= 1.1 * budget:
                break
            logp = self._prune(lines, words, logp, chars, max(int(1.1 * budget),
                                                               int(len(logp) * shrink)))
        bar.close()
        return logp

    def _finish(self, logp, chars, vocab_size, specials):
        """Keep every character, then the most probable pieces up to ``vocab_size``."""
        others = sorted((p for p in logp if p not in chars), key=lambda p: (-logp[p], p))
        floor = min(logp.values())
        kept = {ch: logp.get(ch, floor) for ch in chars}
        kept.update({p: logp[p] for p in others[: vocab_size - len(specials) - len(chars)]})
        ranked = sorted(kept, key=lambda p: (-kept[p], p))
        self._set(specials + ranked, [0.0] * len(specials) + [kept[p] for p in ranked], specials)

    def _em_step(self, words, logp, chars):
        expected = defaultdict(float)
        for w, c in words.items():
            ends = self._edges(w, logp, self.max_piece_length)
            alpha = [0.0] + [-math.inf] * len(w)
            for j in range(1, len(w) + 1):
                alpha[j] = _logsumexp([alpha[i] + lp for i, _, lp in ends[j]])
            beta = [-math.inf] * len(w) + [0.0]
            starts = defaultdict(list)
            for j in range(1, len(w) + 1):
                for i, piece, lp in ends[j]:
                    starts[i].append((j, piece, lp))
            for i in range(len(w) - 1, -1, -1):
                beta[i] = _logsumexp([lp + beta[j] for j, _, lp in starts[i]])
            z = alpha[-1]
            for j in range(1, len(w) + 1):
                for i, piece, lp in ends[j]:
                    expected[piece] += c * math.exp(alpha[i] + lp + beta[j] - z)
        kept = {p: n for p, n in expected.items() if n >= 0.5 or p in chars}
        for ch in chars:  # every character stays, however rarely used
            kept[ch] = max(kept.get(ch, 0.0), 1e-3)
        dz = digamma(sum(kept.values()))
        return {p: digamma(n) - dz for p, n in kept.items()}

    def _prune(self, lines, words, logp, chars, target):
        """Keep the ``target`` pieces whose removal would cost the most likelihood.

        As SentencePiece: Viterbi-segment the corpus; a piece used ``f`` times, in a fraction
        ``F`` of the lines, whose best segmentation without it is ``alt``, costs
        ``F * (log p(piece) - sum log p'(alt))``, where removing it hands its ``f`` uses to each
        piece of ``alt`` and the probabilities are usage counts, renormalised. Unused pieces go.
        """
        maxlen = self.max_piece_length
        seg = {w: self._viterbi(w, self._edges(w, logp, maxlen), 0)[0] for w in words}
        freq = defaultdict(float)
        for w, c in words.items():
            for piece in seg[w]:
                freq[piece] += c
        in_lines, n_lines = defaultdict(float), 0
        for line, c in lines.items():
            n_lines += c
            for piece in {p for w in line for p in seg[w]}:
                in_lines[piece] += c
        total = sum(freq.values())
        loss = {}
        for p in list(logp):
            if p in chars or freq.get(p, 0) == 0:
                continue
            lp = logp.pop(p)  # the best segmentation of the piece without the piece itself
            alt = self._viterbi(p, self._edges(p, logp, maxlen), 0)[0]
            logp[p] = lp
            f = freq[p]
            log_alt_sum = math.log(total + f * (len(alt) - 1))
            logprob_alt = sum(math.log(freq.get(n, 0) + f) - log_alt_sum for n in alt)
            loss[p] = in_lines[p] / n_lines * (math.log(f / total) - logprob_alt)
        keep = sorted(loss, key=lambda p: (-loss[p], p))[: max(0, target - len(chars))]
        return {p: logp[p] for p in [*keep, *chars]}

    # -- encoding
    def _logp(self) -> dict[str, float]:
        return self._lp

    def _encode_parts(self, text: str, fn) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        out = []
        for k, part in enumerate(self._special_pat.split(text)):
            if k % 2:
                out.append(self.piece_id[part])
            elif part:
                for w in sp_words(part):
                    out.extend(fn(w))
        return out

    def _viterbi_ids(self, w: str) -> list[int]:
        ids = self._cache.get(w)
        if ids is None:
            pieces, _ = self._viterbi(w, self._edges(w, self._logp(), self.max_piece_length),
                                      self.unk_score)
            ids = self._cache[w] = [self.piece_id.get(p, 0) if p else 0 for p in pieces]
        return ids

    def encode(self, text: str) -> list[int]:
        """The most probable segmentation (Viterbi); unknown characters become ``<unk>`` (id 0)."""
        return self._encode_parts(text, self._viterbi_ids)

    def sample(self, text: str, alpha: float = 0.1, rng: random.Random | None = None) -> list[int]:
        """A segmentation drawn with probability proportional to ``P(x)**alpha`` (forward
        filtering, backward sampling). Small ``alpha``: nearly uniform; large: nearly Viterbi."""
        rng = rng or random
        lp_all = self._logp()

        def one(w):
            ends = self._edges(w, lp_all, self.max_piece_length)
            for j in range(1, len(w) + 1):
                if w[j - 1] not in lp_all:
                    ends[j].append((j - 1, None, self.unk_score))
            fwd = [0.0] + [-math.inf] * len(w)
            for j in range(1, len(w) + 1):
                fwd[j] = _logsumexp([fwd[i] + alpha * lp for i, _, lp in ends[j]])
            out, j = [], len(w)
            while j > 0:
                weights = [math.exp(fwd[i] + alpha * lp - fwd[j]) for i, _, lp in ends[j]]
                i, piece, _ = rng.choices(ends[j], weights)[0]
                out.append(self.piece_id.get(piece, 0) if piece else 0)
                j = i
            return out[::-1]

        return self._encode_parts(text, one)

    def decode(self, ids) -> str:
        """Pieces joined, ``▁`` back to spaces; ``<unk>`` (id 0) shows as ``⁇`` as SentencePiece."""
        text = "".join("⁇" if i == 0 else self.pieces[i] for i in check_ids(ids, self.vocab_size))
        text = text.replace(SPACE, " ")
        return text.removeprefix(" ")

    def id_to_token(self, i: int) -> str:
        return self.pieces[i]

    # -- files
    def to_dict(self) -> dict:
        """A Hugging Face ``tokenizer.json`` (Metaspace pre-tokenizer, Unigram model)."""
        meta = {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "always",
                "split": True}
        return {
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": self.piece_id[s], "content": s, "single_word": False,
                              "lstrip": False, "rstrip": False, "normalized": False,
                              "special": True} for s in self.special_tokens],
            "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": SPACE},
            "pre_tokenizer": meta, "post_processor": None, "decoder": meta,
            "model": {"type": "Unigram", "unk_id": 0, "byte_fallback": False,
                      "vocab": [[p, s] for p, s in zip(self.pieces, self.scores)],
                      "max_piece_length": self.max_piece_length},
        }

    @classmethod
    def from_dict(cls, d: dict) -> UnigramTokenizer:
        model = d.get("model") or {}
        if model.get("type") != "Unigram":
            raise ValueError(f"model.type: expected 'Unigram', got {model.get('type')!r}")
        if model.get("unk_id", 0) != 0:
            raise ValueError(f"model.unk_id: expected 0, got {model.get('unk_id')}")
        vocab = model.get("vocab", [])
        tok = cls(model.get("max_piece_length", 16))
        specials = [t["content"] for t in d.get("added_tokens", [])] or [vocab[0][0]]
        tok._set([p for p, _ in vocab], [float(s) for _, s in vocab], specials)
        return tok

    @classmethod
    def from_sentencepiece(cls, pieces: list[str], scores: list[float], specials,
                           max_piece_length: int = 16) -> UnigramTokenizer:
        """Use a SentencePiece model's pieces and scores (to compare segmentations)."""
        tok = cls(max_piece_length)
        tok._set(pieces, scores, list(specials))
        return tok
