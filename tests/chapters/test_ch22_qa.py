"""Chapter 22's extractive QA (roadmap_lib.chapters.ch22_applications.extractive_qa): the generated
questions, the word-overlap baseline, the encoding of [CLS] question [SEP] context [SEP], the
extended vocabulary, and span prediction."""

import pytest
import torch

from roadmap_lib.chapters.ch22_applications import extractive_qa as Q
from roadmap_lib.qa import BertForQuestionAnswering
from roadmap_lib.zoo import load_word_bert

SENTENCE = "every bright house under a tree saw every green river inside my wizard today"


def test_parse_and_questions():
    subj, verb, obj = Q.parse(SENTENCE)
    assert subj == ["every", "bright", "house", "under", "a", "tree"] and verb == "saw"
    assert obj == ["every", "green", "river", "inside", "my", "wizard"]  # the adverb is not part of the object
    assert Q.make_question(SENTENCE, "subject") == ("what saw the river", subj)
    assert Q.make_question(SENTENCE, "object") == ("what did the house see", obj)
    assert Q.make_question("the cat saw the cat", "object") is None  # ambiguous: two cats
    with pytest.raises(ValueError, match="kind: expected 'subject' or 'object', got 'adverb'"):
        Q.make_question(SENTENCE, "adverb")
    with pytest.raises(ValueError, match="sentence: expected exactly one verb of the grammar, got 0"):
        Q.parse("no verb here")


@pytest.mark.parametrize("distractor", [False, True])
def test_examples_are_seeded_and_their_spans_are_the_answers(distractor):
    a, b = Q.qa_examples("val", limit=60, distractor=distractor), Q.qa_examples("val", limit=60, distractor=distractor)
    assert a == b and len(a) == 60
    assert {ex.kind for ex in a} == {"subject", "object"}
    for ex in a:
        words = ex.context.split()
        assert ex.answer == " ".join(words[ex.start:ex.end]) and Q.PERIOD not in ex.answer.split()
        assert 1 <= ex.end - ex.start <= Q.MAX_ANSWER
        assert len(ex.question.split()) + len(words) + 3 <= 32
        assert words.count(Q.PERIOD) == (2 if distractor else 1) and words[-1] == Q.PERIOD


def test_overlap_baseline_picks_the_sentence_then_the_longest_run():
    ex = Q.QAExample("what saw the river", f"the cat liked a dog . {SENTENCE} .", 6, 12, "subject")
    assert ex.answer == "every bright house under a tree"
    assert Q.span_text(ex, *Q.overlap_baseline(ex)) == "every bright house under a tree"
    obj = Q.QAExample("what did the house see", ex.context, 13, 19, "object")
    assert obj.answer == "every green river inside my wizard"
    # "see" is not "saw": the heuristic does not know inflection and returns the run after "house"
    assert Q.span_text(obj, *Q.overlap_baseline(obj)) == "under a tree saw every green river inside my wizard"
    em, f1 = Q.squad_scores([ex, obj], [Q.overlap_baseline(ex), Q.overlap_baseline(obj)])
    assert em.tolist() == [1.0, 0.0] and 0 < f1[1] < 1


@pytest.fixture(scope="module")
def extended():
    encoder, vocab, _ = load_word_bert()
    return (encoder, vocab, *Q.extend_vocab(encoder, vocab, [SENTENCE + " .", "the dog paints a lamp"]))


def test_extend_vocab_adds_the_unknown_words_only(extended):
    encoder, vocab, config, state, ext = extended
    added = ext.itos[len(vocab):]
    assert sorted(added) == [".", "bright", "dog", "lamp", "paints", "river"]  # the period is a word of its own
    assert ext.itos[:len(vocab)] == vocab.itos and config.vocab_size == len(ext)
    emb = state["tok_emb.weight"]
    torch.testing.assert_close(emb[:len(vocab)], encoder.bert.tok_emb.weight)
    assert torch.cdist(emb[len(vocab):], emb[len(vocab):]).triu(1).gt(0.1).sum() == 15  # all pairs distinct
    model = BertForQuestionAnswering(config)
    model.bert.load_state_dict(state)  # the state fits the extended config


def test_encode_and_predict(extended):
    *_, config, state, ext = extended
    examples = Q.qa_examples("test", limit=20, distractor=True)
    ids, types, ctx, offsets = Q.encode_qa(ext, examples)
    for r, ex in enumerate(examples):
        q = ext.encode(ex.question)
        assert ids[r, 0] == Q.CLS and ids[r, 1 + len(q)] == Q.SEP and types[r, :offsets[r]].eq(0).all()
        assert ids[r, offsets[r] + ex.start] == ext.encode(ex.context.split()[ex.start])[0]
        assert ctx[r].sum() == len(ex.context.split()) and types[r, ctx[r]].eq(1).all()
    torch.manual_seed(0)
    model = BertForQuestionAnswering(config)
    model.bert.load_state_dict(state)
    spans = Q.predict_spans(model, examples, ext)
    for (s, e), ex in zip(spans, examples):
        assert 0 <= s < e <= min(s + Q.MAX_ANSWER, len(ex.context.split()))
    long = Q.QAExample("what " * 10, "word " * 20 + ".", 0, 1, "subject")  # 10 + 21 words
    with pytest.raises(ValueError, match=r"examples\[0\]: expected at most 29 question and context words, got 31"):
        Q.encode_qa(ext, [long])


@pytest.mark.slow
def test_fine_tuning_lowers_the_span_loss(extended):
    """40 steps of batch 16 (about 10 s on one thread)."""
    encoder, vocab, *_ = extended
    examples = Q.qa_examples("train", limit=200)
    config, state, ext2 = Q.extend_vocab(encoder, vocab, [ex.context for ex in examples] + ["what did the"])
    torch.manual_seed(0)
    model = BertForQuestionAnswering(config)
    model.bert.load_state_dict(state)
    losses = Q.fine_tune_qa(model, examples, ext2, seed=0, steps=40, batch_size=16)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3


def test_shipped_results_rescore_and_fit_the_test_splits():
    from roadmap_lib import DATA_DIR
    from roadmap_lib.chapters.ch22_applications.artifacts import QA_RESULTS, qa_results
    from roadmap_lib.zoo import MAX_BYTES

    info = qa_results()
    assert (DATA_DIR / QA_RESULTS).stat().st_size < MAX_BYTES
    assert set(info["variants"]) == set(Q.VARIANTS) and info["seeds"] == [0, 1, 2]
    for variant, rec in info["variants"].items():
        test = Q.qa_examples("test", distractor=Q.VARIANTS[variant])
        assert rec["n_test"] == len(test)
        em, f1 = Q.score_runs(test, rec["runs"])
        for k, run in enumerate(rec["runs"].values()):
            assert em[:, k].mean().item() == pytest.approx(run["em"], abs=1e-6)
            assert f1[:, k].mean().item() == pytest.approx(run["f1"], abs=1e-6)
