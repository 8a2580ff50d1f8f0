"""Chapter 23's RAG pieces: questions, reader, answer scores, grounding, and a small pipeline."""

import random

import pytest

from roadmap_lib.chapters.ch23_long_context_rag import rag
from roadmap_lib.retrieval import Document, HashedBagEncoder, featurize


def test_definition_sentence():
    assert rag.definition_sentence("1. [common] A thing. Second sentence.") == "A thing."
    assert rag.definition_sentence("[Usenet] [obs.] Odd! Then more.") == "Odd!"
    assert rag.definition_sentence("no full stop") == "no full stop"


def test_answer_scores_hand_cases():
    # SQuAD-style normalisation: case, punctuation, articles, spaces
    assert rag.exact_match("The  Kluge!", "kluge") == 1.0
    assert rag.exact_match("a kluge", "kludge") == 0.0
    # pred {hack, value}, gold {hack, of, value, x}: precision 2/2, recall 2/4 -> F1 2/3
    assert rag.answer_f1("hack value", "hack of value x") == pytest.approx(2 / 3)
    assert rag.answer_f1("", "") == 1.0 and rag.answer_f1("x", "") == 0.0
    assert rag.answer_f1("foo", "bar") == 0.0


def test_support_is_the_best_single_passage_overlap():
    assert rag.support("a big red fox", ["big dog", "red fox runs"]) == pytest.approx(2 / 3)
    assert rag.support("", ["x"]) == 0.0


def test_typos_keep_short_words_and_the_first_letter():
    rng = random.Random(0)
    out = rag.add_typos("the kluge is a hack", rng, p=1.0).split()
    assert out[0] == "the" and out[2] == "is" and out[3] == "a"
    assert out[1] != "kluge" and out[1][0] == "k" and len(out[1]) == 5
    assert sum(a != b for a, b in zip(out[1], "kluge")) == 1


def _docs():
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    rng = random.Random(0)
    return [Document(i, f"term{i}", " ".join(rng.choice(words) for _ in range(40)) + f" unique{i}.")
            for i in range(40)]


def test_eval_set_and_held_out_fragment():
    docs = _docs()
    ids = rag.eval_docs(docs, n=5, min_words=30, seed=1)
    assert ids == sorted(ids) and len(set(ids)) == 5
    ev = rag.make_eval_set(docs, ids)
    assert ev.questions[0] == f"What is term{ids[0]}?"
    assert ev.fragments[0] in docs[ids[0]].text and len(ev.fragments[0].split()) == rag.FRAGMENT_WORDS
    train_words = rag.training_text(docs, ids)[ids[0]]
    assert "\n" in train_words and len(train_words) == len(docs[ids[0]].text.split()) - rag.FRAGMENT_WORDS + 1


def test_small_pipeline_runs_and_bm25_finds_unique_words():
    docs = _docs()
    enc = HashedBagEncoder(256, 8)
    r = rag.Retrievers(docs, enc, [featurize(str(d), 256) for d in docs], hnsw_m=8)
    out = r.run([f"unique{i}" for i in range(40)], k=5, depth=10)
    assert set(out) == {"bm25", "dense", "dense (HNSW)", "hybrid (RRF)", "dense + BM25 rerank"}
    assert [x[0] for x in out["bm25"]] == list(range(40))
    assert rag.read(docs, [3]) == rag.definition_sentence(docs[3].text)
