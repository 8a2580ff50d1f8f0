"""BM25 equals rank_bm25's BM25Okapi on the same tokens."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi

from roadmap_lib.retrieval import BM25, simple_tokenize

WORDS = st.sampled_from(["foo", "bar", "baz", "hack", "kluge", "cruft", "the", "of"])


@settings(max_examples=60, deadline=None)
@given(corpus=st.lists(st.lists(WORDS, min_size=1, max_size=12), min_size=2, max_size=12),
       query=st.lists(st.sampled_from(["foo", "bar", "hack", "the", "zzz"]), min_size=1, max_size=5),
       k1=st.floats(0.5, 2.0), b=st.floats(0.0, 1.0))
def test_scores_equal_rank_bm25(corpus, query, k1, b):
    np.testing.assert_allclose(BM25(corpus, k1=k1, b=b).scores(query),
                               BM25Okapi(corpus, k1=k1, b=b).get_scores(query), rtol=1e-12, atol=1e-12)


def test_scores_equal_rank_bm25_on_jargon_entries():
    from roadmap_lib.data import load_text
    from roadmap_lib.retrieval import jargon_entries

    docs = [simple_tokenize(str(d)) for d in jargon_entries(load_text())[:400]]
    ours, ref = BM25(docs), BM25Okapi(docs)
    for q in ["what is a kluge", "foo bar baz", "the the of", "unix wizard"]:
        np.testing.assert_allclose(ours.scores(simple_tokenize(q)), ref.get_scores(simple_tokenize(q)),
                                   rtol=1e-12, atol=1e-12)


def test_hand_computed_score_and_search():
    corpus = [["a", "b"], ["b", "b", "c"], ["c"], ["d"], ["e"]]
    bm = BM25(corpus, k1=1.5, b=0.75)
    avgdl = 8 / 5
    idf_a = np.log(5 - 1 + 0.5) - np.log(1 + 0.5)
    want = idf_a * 1 * 2.5 / (1 + 1.5 * (1 - 0.75 + 0.75 * 2 / avgdl))
    assert bm.scores(["a"])[0] == pytest.approx(want)
    assert bm.scores(["a"])[1:].tolist() == [0.0] * 4
    scores, ids = bm.search(["c"], k=2)
    assert ids.tolist() == [2, 1] and scores[0] > scores[1] > 0  # the shorter document first


def test_tokenizer_and_bad_input():
    assert simple_tokenize("Foo-Bar's 2nd {hack}!") == ["foo", "bar", "s", "2nd", "hack"]
    with pytest.raises(TypeError, match="query"):
        BM25([["a"]]).scores("a")
    with pytest.raises(TypeError, match="corpus"):
        BM25(["a b"])
    with pytest.raises(ValueError, match="corpus"):
        BM25([])
    with pytest.raises(ValueError, match="k1"):
        BM25([["a"]], b=2.0)
