"""Okapi BM25 (Robertson et al.), the lexical baseline every retriever is compared with.

For a query ``q`` and document ``d`` of length ``|d|`` (average ``avgdl``)::

    score(q, d) = Σ_{t in q} idf(t) · tf(t, d)·(k1 + 1) / (tf(t, d) + k1·(1 - b + b·|d|/avgdl))
    idf(t) = ln(N - df(t) + 0.5) - ln(df(t) + 0.5)

``tf`` saturates (a word said ten times is not ten times the evidence) and long documents are
discounted by ``b``. Terms in more than half of the documents would get a negative idf; as
``rank_bm25.BM25Okapi`` does, they get ``epsilon`` times the average idf instead. A query term that
repeats counts once per occurrence. Scores equal ``BM25Okapi``'s on the same tokens.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")


def simple_tokenize(text: str) -> list[str]:
    """Lower-cased runs of ASCII letters and digits: the tokenisation used for BM25 in this book."""
    return _WORD.findall(text.lower())


class BM25:
    """BM25 over a corpus of token lists; ``scores(query_tokens)`` -> ``(num_docs,)`` float64."""

    def __init__(self, corpus: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75,
                 epsilon: float = 0.25) -> None:
        if isinstance(corpus, str) or not len(corpus):
            raise ValueError("corpus: expected a non-empty list of token lists, got "
                             f"{type(corpus).__name__} of length {len(corpus)}")
        if any(isinstance(doc, str) for doc in corpus):
            raise TypeError("corpus: expected token lists (e.g. simple_tokenize(text)), got a str")
        if not k1 >= 0 or not 0 <= b <= 1:
            raise ValueError(f"k1, b: expected k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self.doc_len = np.array([len(d) for d in corpus], dtype=np.float64)
        self.avgdl = self.doc_len.sum() / len(corpus)
        # inverted index: term -> (document indices, term counts)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for i, doc in enumerate(corpus):
            for term, tf in Counter(doc).items():
                ids, tfs = postings.setdefault(term, ([], []))
                ids.append(i)
                tfs.append(tf)
        self.postings = {t: (np.array(i), np.array(f, dtype=np.float64)) for t, (i, f) in postings.items()}
        n = len(corpus)
        self.idf = {t: math.log(n - len(i) + 0.5) - math.log(len(i) + 0.5) for t, (i, _) in postings.items()}
        self.average_idf = sum(self.idf.values()) / len(self.idf)
        floor = epsilon * self.average_idf
        self.idf = {t: (v if v >= 0 else floor) for t, v in self.idf.items()}
        self._norm = k1 * (1 - b + b * self.doc_len / self.avgdl)

    def __len__(self) -> int:
        return len(self.doc_len)

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """BM25 score of every document for the query tokens ``query`` (unknown terms add 0)."""
        if isinstance(query, str):
            raise TypeError("query: expected a list of tokens, got a str (tokenise it first)")
        out = np.zeros(len(self))
        for term in query:
            if term not in self.postings:
                continue
            ids, tf = self.postings[term]
            out[ids] += self.idf[term] * tf * (self.k1 + 1) / (tf + self._norm[ids])
        return out

    def search(self, query: Sequence[str], k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` of the ``k`` best documents, best first (ties: lower id first)."""
        s = self.scores(query)
        ids = np.lexsort((np.arange(len(s)), -s))[:k]
        return s[ids], ids
