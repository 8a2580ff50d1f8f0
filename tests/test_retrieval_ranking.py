"""recall@k, MRR and overlap@k on hand-derived cases."""

import pytest

from roadmap_lib.retrieval import mrr, overlap_at_k, recall_at_k


def test_hand_cases():
    ranked, gold = [[3, 1, 2], [5, 6, 7], [9, 8]], [1, 5, 4]
    assert recall_at_k(ranked, gold, 1) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, gold, 2) == pytest.approx(2 / 3)
    assert mrr(ranked, gold) == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert mrr(ranked, gold, k=1) == pytest.approx(1 / 3)
    assert overlap_at_k([[1, 2, 3], [4, 5, 6]], [[3, 2, 9], [4, 5, 6]], 3) == pytest.approx((2 / 3 + 1) / 2)


def test_errors():
    with pytest.raises(ValueError, match="ranked, gold"):
        recall_at_k([[1]], [1, 2], 1)
    with pytest.raises(ValueError, match="k"):
        recall_at_k([[1]], [1], 0)
    with pytest.raises(ValueError, match="approx, exact"):
        overlap_at_k([], [], 1)
