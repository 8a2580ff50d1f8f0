"""Chapter 22's summarisation row (roadmap_lib.chapters.ch22_applications.summarise): the example
rule, the oracle, the splits, the features, the scorer, and ROUGE-L equal to rouge-score."""

import numpy as np
import pytest
import torch

from roadmap_lib.chapters.ch22_applications import summarise as S
from roadmap_lib.retrieval import Document


def test_split_sentences_by_hand():
    assert S.split_sentences("A thing. It is big! Is it? (Yes.) 3 more. e.g. not a break") == \
        ["A thing.", "It is big!", "Is it?", "(Yes.) 3 more. e.g. not a break"]  # ")" and "e.g. n": no break
    assert S.split_sentences("  one sentence  ") == ["one sentence"]
    with pytest.raises(TypeError, match="text: expected a str"):
        S.split_sentences(None)


def test_examples_follow_the_rule():
    docs = [Document(0, "foo", "1. [common] A metasyntactic variable used in many many examples. B one. C two. D three."),
            Document(1, "bar", "Too short a definition. B one. C two. D three."),
            Document(2, "baz", "A long enough first sentence with eight words. Only two. Sentences here.")]
    exs = S.examples(docs)
    assert [e.doc_id for e in exs] == [0]
    assert exs[0].target == "A metasyntactic variable used in many many examples."
    assert exs[0].sources == ("B one.", "C two.", "D three.")


def test_oracle_picks_the_best_rouge_l_sentence():
    ex = S.Example(0, "t", "the cat sat on the mat", ("a dog ran", "the cat sat on a rug", "the cat sat on the mat"))
    assert S.oracle_index(ex) == 2
    assert S.summary_of(ex, "lead-2") == "a dog ran the cat sat on a rug"
    assert S.scores([ex], "lead-1").tolist() == [0.0]
    assert S.scores([ex], "oracle", [2]).tolist() == [1.0]
    with pytest.raises(ValueError, match="system: expected one of"):
        S.summary_of(ex, "lead-3")
    with pytest.raises(ValueError, match="pick: the 'BERT scorer' system needs"):
        S.summary_of(ex, "BERT scorer")
    with pytest.raises(ValueError, match="picks: expected one per example"):
        S.scores([ex], "oracle", [1, 2])


@pytest.mark.slow
def test_rouge_l_equals_rouge_score():
    """(Importing rouge-score and nltk takes a few seconds.)"""
    from rouge_score import rouge_scorer

    ref = rouge_scorer.RougeScorer(["rougeL"])
    pairs = [("A program that copies itself.", "Copies itself over a network, a program."),
             ("the quick brown fox", "the slow brown dog"), ("x", "y z")]
    for t, p in pairs:
        assert S.rouge_l(t, p) == pytest.approx(ref.score(t, p)["rougeL"].fmeasure, abs=1e-12)


def test_test_split_is_seeded_and_a_third():
    a, b = S.test_split(300, 0), S.test_split(300, 1)
    assert a == S.test_split(300, 0) and a != b
    assert len(a) == 100 == len(set(a)) and a == sorted(a) and max(a) < 300
    with pytest.raises(ValueError, match="n: expected an int >= 3"):
        S.test_split(2, 0)


def test_features_and_a_scorer_that_learns_a_position():
    exs = [S.Example(i, "t", "target", tuple(f"sentence {j} of {i}" + " word" * (j + i % 3) for j in range(4)))
           for i in range(30)]
    f = S.position_features(exs[0])
    assert f.shape == (4, S.MAX_POSITION + 2) and f[:, :4].tolist() == np.eye(4, S.MAX_POSITION + 1)[:, :4].tolist()
    vecs = np.random.default_rng(0).normal(size=(120, 5))
    with_vecs = S.features(exs, vecs)
    assert with_vecs[1].shape == (4, S.MAX_POSITION + 2 + 10)
    assert np.allclose(with_vecs[1][:, -5:], vecs[4:8] * vecs[4:8].mean(0))
    with pytest.raises(ValueError, match="vectors: expected one row per source sentence"):
        S.features(exs, vecs[:-1])
    picks = S.train_and_pick(S.features(exs, None), [2] * 30, test=[0, 5, 9])
    assert picks == [2, 2, 2]


def test_embedding_ignores_padding():
    from roadmap_lib.chapters.ch22_applications.experiments import load_encoder

    model, vocab = load_encoder()
    short, long = "a small hack", "a very long sentence about a kludge that some hacker wrote at night"
    alone = S.embed(model, vocab, [short])
    batched = S.embed(model, vocab, [long, short])
    assert alone.shape == (1, model.bert.tok_emb.weight.shape[1])
    assert np.allclose(alone[0], batched[1], atol=1e-5)
    assert not np.allclose(batched[0], batched[1], atol=1e-3)


def test_recorded_study_re_scores():
    """The shipped results: split 0's picks re-score to the recorded ROUGE-L of every system."""
    from roadmap_lib.chapters.ch22_applications.artifacts import summarise_results
    from roadmap_lib.chapters.ch22_applications.retrieve import corpus

    info = summarise_results()
    exs = S.examples(corpus())
    run = info["seeds"]["0"]
    test = [exs[i] for i in run["test"]]
    for system in S.SYSTEMS:
        assert S.scores(test, system, run["picks"].get(system)).mean().item() == \
            pytest.approx(run["rougeL"][system], abs=1e-12)
    assert torch.tensor(run["picks"]["oracle"]).max().item() < max(len(e.sources) for e in test)
