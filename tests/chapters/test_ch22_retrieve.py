"""Chapter 22's retrieval row (roadmap_lib.chapters.ch22_applications.retrieve): the query rule, the
reciprocal ranks the bootstrap resamples, the three retrievers, and chapter 23's encoder loaded
through the core checkpoint reader."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.chapters.ch22_applications import retrieve as R
from roadmap_lib.retrieval import Document, HashedBagEncoder, mrr, recall_at_k, simple_tokenize


@pytest.fixture(scope="module")
def docs():
    return R.corpus()


def test_definition_skips_sense_numbers_and_tags():
    assert R.definition_of(Document(0, "foo", "1. [techspeak] A thing. Another sentence.")) == "A thing."
    assert R.definition_of(Document(0, "foo", "[obs.] [IBM] A thing with 3.5 parts; see bar. More")) == \
        "A thing with 3.5 parts; see bar."
    assert R.definition_of(Document(0, "foo", "no full stop here")) == "no full stop here"


def test_queries_follow_the_stated_rule(docs):
    qs = R.make_queries(docs, 60, seed=3)
    assert qs == R.make_queries(docs, 60, seed=3)  # seeded
    assert qs.gold != R.make_queries(docs, 60, seed=4).gold
    assert len(set(qs.gold)) == 60 and qs.gold == sorted(qs.gold)
    for g, d, kw in zip(qs.gold, qs.definition, qs.keywords):
        doc = docs[g]
        head = set(simple_tokenize(doc.title))
        sentence = set(simple_tokenize(R.definition_of(doc)))
        words = kw.split()
        assert len(words) == R.KEYWORDS == len(set(words))
        assert all(len(w) >= 4 and w in sentence and w not in head and w not in R._STOP for w in words)
        assert not set(simple_tokenize(d)) & head
        assert len(simple_tokenize(R.definition_of(doc))) >= R.MIN_WORDS


def test_query_errors_name_the_argument(docs):
    with pytest.raises(ValueError, match="n: expected an int >= 1"):
        R.make_queries(docs, 0)
    with pytest.raises(ValueError, match="n: only .* entries qualify"):
        R.make_queries(docs, 10**6)
    with pytest.raises(ValueError, match="kind: expected one of"):
        R.make_queries(docs, 5).queries("title")


def test_reciprocal_ranks_by_hand():
    ranked = [[5, 2, 9], [1, 2, 3], [7, 8, 9]]
    rr = R.reciprocal_ranks(ranked, [2, 1, 4])
    assert rr.tolist() == [0.5, 1.0, 0.0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.permutations(list(range(12))), min_size=1, max_size=8), st.data())
def test_reciprocal_ranks_give_the_core_mrr_and_recall(rankings, data):
    gold = [data.draw(st.integers(0, 13)) for _ in rankings]  # 12, 13: never retrieved
    rr = R.reciprocal_ranks(rankings, gold, k=10)
    assert rr.mean().item() == pytest.approx(mrr(rankings, gold, 10))
    for j in (1, 5, 10):
        assert (rr >= 1 / j - 1e-12).double().mean().item() == pytest.approx(recall_at_k(rankings, gold, j))


def test_search_on_a_toy_corpus():
    toy = [Document(i, t, x) for i, (t, x) in enumerate([
        ("hack", "an appropriate application of ingenuity"), ("kludge", "a clever programming trick"),
        ("foo", "a sample name for absolutely anything"), ("bar", "the second metasyntactic variable"),
        ("cruft", "excess unpleasant substance in software"), ("grok", "to understand intuitively")])]
    torch.manual_seed(0)
    s = R.Search(toy, HashedBagEncoder(512, 8))
    ranked = s.rank(["unpleasant software substance", "metasyntactic variable"])
    assert set(ranked) == set(R.METHODS)
    assert [r[0] for r in ranked["BM25"]] == [4, 3]
    for m in R.METHODS:
        assert all(len(r) == len(toy) == len(set(r)) for r in ranked[m])  # k=10 > 6 entries: all of them
    with pytest.raises(ValueError, match="queries: expected a non-empty list"):
        s.rank("grok")


def test_chapter_23s_encoder_loads_through_the_core_reader(docs):
    enc = R.load_encoder()
    assert not enc.training and enc.bag.weight.dtype == torch.float32
    v = enc.encode([[1, 2, 3], [4]])
    assert v.shape == (2, enc.dim) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_bm25_finds_a_definition_it_contains(docs):
    """On the real corpus: BM25 puts the entry first for most of its own (headword-less) definitions."""
    qs = R.make_queries(docs, 40, seed=0)
    s = R.Search(docs, R.load_encoder())
    got = R.scores(s.rank(qs.definition)["BM25"], qs.gold)
    assert got["recall@1"] >= 0.9


def test_top_titles_and_per_seed():
    toy = [Document(i, t, x) for i, (t, x) in enumerate([("hack", "a quick clever job"), ("grok", "to understand"),
                                                         ("cruft", "excess software")])]
    torch.manual_seed(0)
    s = R.Search(toy, HashedBagEncoder(256, 4))
    got = R.top_titles(s, "understand deeply", k=2)
    assert got["BM25"][0] == "grok" and all(len(v) == 2 for v in got.values())
    table = {"keywords": {"BM25": {2: {"mrr@10": 0.3}, 0: {"mrr@10": 0.1}, 1: {"mrr@10": 0.2}}}}
    assert R.per_seed(table, "keywords", "BM25", "mrr@10") == [0.1, 0.2, 0.3]
