"""Chapter 22's systems (roadmap_lib.chapters.ch22_applications): data, baselines, encoder plumbing."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from roadmap_lib.chapters.ch22_applications import experiments as E
from roadmap_lib.chapters.ch22_applications import plots
from roadmap_lib.data import load_task
from roadmap_lib.evaluation import bootstrap_ci
from roadmap_lib.metrics import accuracy
from roadmap_lib.tagging import bio_to_spans, span_scores


@pytest.fixture(scope="module")
def encoder():
    return E.load_encoder()


def test_split_gold_tags_mark_the_replaced_word():
    data = E.Split("intruder", "test", limit=40)
    tags = data.gold_tags()
    for text, p, t in zip(data.text, data.position.tolist(), tags):
        assert len(t) == len(text.split())
        assert bio_to_spans(t) == ([("INTRUDER", p, p + 1)] if p >= 0 else [])
    assert (data.position >= 0).sum() == (data.labels == 0).sum()


def test_encode_puts_word_i_at_token_i_plus_one(encoder):
    _, vocab = encoder
    ids = E.encode(vocab, ["the hack was elegant"])
    words = vocab.encode("the hack was elegant")
    assert ids.shape == (1, E.CONTEXT)
    assert ids[0, 0] == E.CLS and ids[0, 5] == E.SEP and ids[0, 6:].eq(E.PAD).all()
    assert ids[0, 1:5].tolist() == words
    with pytest.raises(ValueError, match=r"texts\[0\]: expected at most 30 words, got 31"):
        E.encode(vocab, [" ".join(["word"] * 31)])


def test_token_targets_agree_with_gold_tags():
    data = E.Split("intruder", "val", limit=30)
    y = E.token_targets(data)
    assert E.tags_from_ids(y.clamp(min=0), data.text) == data.gold_tags()
    flagged = [[i for i, t in enumerate(row) if t != "O"] for row in data.gold_tags()]
    assert E.flagged_to_tags(flagged, data.text) == data.gold_tags()


@pytest.mark.slow
def test_unigram_tfidf_cannot_tell_a_swapped_sentence_from_its_original():
    """A swap keeps the bag of words: the unigram baseline gives a corrupted sentence and its
    original the same label, whatever it learned; the bigram baseline can tell them apart. (Slow:
    fits four TF-IDF models, about 8 s.)"""
    train = E.Split("acceptability", "train", limit=1500)
    test = E.Split("acceptability", "test", limit=200)
    corrupted = [i for i in range(len(test)) if test.labels[i] == 0]
    rows = load_task("acceptability", "test")
    originals = E.Split("acceptability", "test", limit=200)
    for i in corrupted:
        words = originals.text[i].split()
        row = rows[i]
        a, b = int(row["swap_i"]), int(row["swap_j"])
        words[a], words[b] = words[b], words[a]
        originals.text[i] = " ".join(words)
    uni = E.tfidf_baseline(train, test, ngrams=1)
    assert torch.equal(uni, E.tfidf_baseline(train, originals, ngrams=1))
    bi = E.tfidf_baseline(train, test, ngrams=2)
    assert not torch.equal(bi[corrupted], E.tfidf_baseline(train, originals, ngrams=2)[corrupted])


def test_tfidf_bad_ngrams():
    data = E.Split("intruder", "val", limit=10)
    with pytest.raises(ValueError, match="ngrams: expected 1, 2 or 3, got 4"):
        E.tfidf_baseline(data, data, ngrams=4)


def test_split_bad_task():
    with pytest.raises(ValueError, match="task: expected 'acceptability' or 'intruder', got 'qa'"):
        E.Split("qa", "train")


def test_rarest_word_tagger_hand_case():
    data = E.Split("intruder", "val", limit=2)
    data.text = ["a a b", "c a a"]
    tagger = E.RarestWordTagger(data)  # counts: a 4, b 1, c 1
    tagger.threshold = 1
    assert tagger.tag(["a b a", "a a a"]) == [["O", "B-INTRUDER", "O"], ["O", "O", "O"]]
    tagger.threshold = 0
    assert tagger.tag(["a zzz"]) == [["O", "B-INTRUDER"]]  # an unseen word has count 0


@pytest.mark.slow
def test_make_model_copies_the_encoder_and_fine_tune_learns(encoder):
    """(Slow: 12 fine-tuning steps of the zoo BERT, about 10 s on a busy machine.)"""
    enc, vocab = encoder
    model = E.make_model(enc, "token", seed=0)
    for (k, v), (k2, v2) in zip(model.bert.state_dict().items(), enc.bert.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    with pytest.raises(ValueError, match="kind: expected 'sequence' or 'token', got 'span'"):
        E.make_model(enc, "span", seed=0)
    data = E.Split("intruder", "train", limit=64)
    clf = E.make_model(enc, "sequence", seed=0)
    ids = E.encode(vocab, data.text)
    losses = E.fine_tune(clf, ids, data.labels, seed=0, steps=12, lr=3e-3, batch_size=16)
    assert len(losses) == 12
    assert sum(losses[-3:]) < sum(losses[:3])
    assert E.predict(clf, ids).shape == (64,)
    assert E.predict(model, ids).shape == (64, E.CONTEXT)


def test_plots_return_axes():
    g = torch.tensor([0, 1, 1, 0])
    ci = bootstrap_ci(accuracy, g, g, n=10)
    ax = plots.plot_system_scores([("a", ci, [1.0]), ("b", ci, [0.9, 1.0])], metric="accuracy", chance=0.5)
    assert len(ax.get_xticks()) == 2
    ax = plots.plot_tagged_sentence(["a", "b"], ["O", "B-X"], ["B-X", "O"])
    assert [t.get_text() for t in ax.texts] == ["a", "b"]
    matplotlib.pyplot.close("all")


def test_span_scores_on_the_task_equal_word_f1():
    """Intruder spans are single words: span F1 equals the F1 of the flagged words."""
    from roadmap_lib.metrics import token_f1

    data = E.Split("intruder", "val", limit=200)
    gold = E.token_targets(data)
    g = torch.Generator().manual_seed(0)
    pred = torch.where(gold >= 0, (torch.rand(gold.shape, generator=g) < 0.1).long(), gold)
    pred = torch.where(gold == 1, (torch.rand(gold.shape, generator=g) < 0.6).long(), pred)
    s = span_scores(E.tags_from_ids(pred.clamp(min=0), data.text), data.gold_tags())
    assert s.f1 == pytest.approx(token_f1(pred, gold))
