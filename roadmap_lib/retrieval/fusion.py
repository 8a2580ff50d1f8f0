"""Combining rankings: reciprocal rank fusion (Cormack et al. 2009) and re-ranking a candidate list.

RRF scores a document by ``Σ_r 1 / (k + rank_r(d))`` over the rankings ``r`` that contain it
(ranks from 1). It needs no score calibration between a lexical and a dense retriever, only their
orders; ``k = 60`` is the paper's constant, which keeps one first place from dominating.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def rrf(rankings: Sequence[Sequence[int]], k: float = 60.0) -> list[int]:
    """Fuse ``rankings`` (lists of document ids, best first) into one list, best first; ties are
    broken by the best single rank, then by id."""
    if isinstance(rankings, (str, bytes)) or not len(rankings):
        raise ValueError("rankings: expected a non-empty list of ranked id lists")
    if not k > 0:
        raise ValueError(f"k: expected a number > 0, got {k}")
    score: dict[int, float] = {}
    best: dict[int, int] = {}
    for ranking in rankings:
        if len(set(map(int, ranking))) != len(ranking):
            raise ValueError(f"rankings: a ranking repeats an id: {list(ranking)[:10]}...")
        for rank, doc in enumerate(map(int, ranking), start=1):
            score[doc] = score.get(doc, 0.0) + 1.0 / (k + rank)
            best[doc] = min(best.get(doc, rank), rank)
    return sorted(score, key=lambda d: (-score[d], best[d], d))


def rerank(candidates: Sequence[int], score: Callable[[Sequence[int]], Sequence[float]]) -> list[int]:
    """Reorder ``candidates`` by ``score(candidates)`` (higher first; ties keep the input order).

    A re-ranker sees only the candidates a first-stage retriever returned: it can move the right
    document up, never bring in one that is not there."""
    candidates = [int(c) for c in candidates]
    s = list(score(candidates))
    if len(s) != len(candidates):
        raise ValueError(f"score: expected one score per candidate ({len(candidates)}), got {len(s)}")
    order = sorted(range(len(candidates)), key=lambda i: (-float(s[i]), i))
    return [candidates[i] for i in order]
