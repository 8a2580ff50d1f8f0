"""Reciprocal rank fusion and re-ranking, against hand-derived cases."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roadmap_lib.retrieval import rerank, rrf


def test_rrf_hand_case():
    # doc 7: 1/(60+1) + 1/(60+3); doc 3: 1/(60+2) + 1/(60+1); doc 9: 1/(60+2) only
    assert rrf([[7, 3], [3, 9, 7]]) == [3, 7, 9]
    assert rrf([[1, 2]], k=1) == [1, 2]


def test_rrf_ties_broken_by_best_rank_then_id():
    assert rrf([[1, 2], [2, 1]]) == [1, 2]  # equal sums, equal best rank: lower id
    assert rrf([[5], [6]]) == [5, 6]


@given(st.lists(st.permutations(list(range(8))), min_size=1, max_size=4))
def test_rrf_of_identical_rankings_is_that_ranking(perms):
    assert rrf([perms[0]] * len(perms)) == list(perms[0])


def test_rrf_errors():
    with pytest.raises(ValueError, match="rankings"):
        rrf([])
    with pytest.raises(ValueError, match="repeats"):
        rrf([[1, 1]])
    with pytest.raises(ValueError, match="k"):
        rrf([[1]], k=0)


def test_rerank():
    assert rerank([4, 5, 6], lambda c: [0.1, 0.9, 0.1]) == [5, 4, 6]
    with pytest.raises(ValueError, match="one score per candidate"):
        rerank([1, 2], lambda c: [1.0])
