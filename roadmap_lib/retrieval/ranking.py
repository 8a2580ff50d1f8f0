"""Retrieval metrics: recall@k, mean reciprocal rank, and how much an approximate search agrees
with the exact one. Each query has exactly one relevant document here (``gold[i]``)."""

from __future__ import annotations

from collections.abc import Sequence


def _check(ranked: Sequence[Sequence[int]], gold: Sequence[int]) -> None:
    if len(ranked) != len(gold) or not len(gold):
        raise ValueError(f"ranked, gold: expected one ranking per gold id (non-empty), got "
                         f"{len(ranked)} rankings and {len(gold)} gold ids")


def recall_at_k(ranked: Sequence[Sequence[int]], gold: Sequence[int], k: int) -> float:
    """Fraction of queries whose gold document is among the first ``k`` ids of its ranking."""
    _check(ranked, gold)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected an int >= 1, got {k!r}")
    return sum(int(g) in [int(x) for x in r[:k]] for r, g in zip(ranked, gold)) / len(gold)


def mrr(ranked: Sequence[Sequence[int]], gold: Sequence[int], k: int = 10) -> float:
    """Mean of ``1 / rank`` of the gold document (0 when it is not in the first ``k``)."""
    _check(ranked, gold)
    total = 0.0
    for r, g in zip(ranked, gold):
        top = [int(x) for x in r[:k]]
        total += 1.0 / (top.index(int(g)) + 1) if int(g) in top else 0.0
    return total / len(gold)


def overlap_at_k(approx: Sequence[Sequence[int]], exact: Sequence[Sequence[int]], k: int) -> float:
    """Mean fraction of the exact top-``k`` ids that the approximate top-``k`` also returns
    (the "recall@k against exact search" by which ANN indexes are compared)."""
    if len(approx) != len(exact) or not len(exact):
        raise ValueError(f"approx, exact: expected the same non-zero number of queries, got "
                         f"{len(approx)} and {len(exact)}")
    return sum(len({int(x) for x in a[:k]} & {int(x) for x in e[:k]}) / k
               for a, e in zip(approx, exact)) / len(exact)
