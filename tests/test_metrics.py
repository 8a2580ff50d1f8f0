"""roadmap_lib.metrics against sacrebleu: scores agree within 1e-6 BLEU points (on the 0-100 scale)."""

import math

import pytest
import sacrebleu
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.metrics import (
    accuracy,
    corpus_bleu,
    perplexity,
    sentence_bleu,
    sequence_perplexity,
    token_f1,
    tokenize_13a,
)

TOL = 1e-6  # BLEU points

HYPS = ["The cat sat on the mat.", "there is a cat on the mat", "a dog, 3.5 km away - really!",
        "", "completely unrelated words here", "the the the the the the the",
        "It's 10-20 (or so) items: a/b & c; \"quoted\" <tag> $5,000.00?"]
REFS = ["The cat is on the mat.", "there is a cat on the mat", "the dog is 3.5 km away, really!",
        "an empty hypothesis", "nothing in common at all", "the cat is on the mat",
        "It is 10-20 items: a/b & c; \"quoted\" $5,000.00?"]
REFS2 = ["A cat was on the mat.", "a cat is on the mat", "a dog 3.5 km away", "empty",
         "unrelated words", "the cat", "10-20 items or so"]


def test_tokenizer_matches_sacrebleu_13a():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    tok = Tokenizer13a()
    for line in HYPS + REFS + ["a-b 1-2 x.y 1.5 1,000 end.", "&quot;hi&quot; &amp; &lt;b&gt;", "<skipped> ok"]:
        assert tokenize_13a(line) == tok(line).split(), line


@pytest.mark.parametrize("smooth", ["exp", "floor", "add-k", "none"])
def test_corpus_bleu_matches_sacrebleu(smooth):
    ours = corpus_bleu(HYPS, REFS, smooth_method=smooth)
    theirs = sacrebleu.corpus_bleu(HYPS, [REFS], smooth_method=smooth)
    assert abs(ours.score - theirs.score) < TOL
    if smooth != "add-k":  # sacrebleu reports add-k's counts after adding k
        assert ours.matches == theirs.counts and ours.totals == theirs.totals
    assert ours.hyp_len == theirs.sys_len and ours.ref_len == theirs.ref_len
    assert abs(ours.brevity_penalty - theirs.bp) < 1e-12


def test_corpus_bleu_multiple_references():
    ours = corpus_bleu(HYPS, [REFS, REFS2])
    theirs = sacrebleu.corpus_bleu(HYPS, [REFS, REFS2])
    assert abs(ours.score - theirs.score) < TOL and ours.ref_len == theirs.ref_len


@pytest.mark.parametrize("smooth", ["exp", "floor", "add-k", "none"])
@pytest.mark.parametrize("i", range(len(HYPS)))
def test_sentence_bleu_matches_sacrebleu(i, smooth):
    ours = sentence_bleu(HYPS[i], [REFS[i], REFS2[i]], smooth_method=smooth)
    theirs = sacrebleu.sentence_bleu(HYPS[i], [REFS[i], REFS2[i]], smooth_method=smooth)
    assert abs(ours.score - theirs.score) < TOL, (HYPS[i], ours.score, theirs.score)


def test_edge_cases():
    # identical -> 100; empty hypothesis -> 0; no 4-gram match -> smoothed, below the unsmoothed none
    assert abs(corpus_bleu(["a b c d e"], ["a b c d e"]).score - 100) < TOL
    assert corpus_bleu([""], ["a b c"]).score == 0.0
    no4 = corpus_bleu(["a b c x d e f"], ["a b c d e f"])
    assert no4.matches[3] == 0 and 0 < no4.score < 100
    assert abs(no4.score - sacrebleu.corpus_bleu(["a b c x d e f"], [["a b c d e f"]]).score) < TOL
    assert corpus_bleu(["a b c x d e f"], ["a b c d e f"], smooth_method="none").score < 1e-3
    # a hypothesis longer than the reference: no brevity penalty, but precision drops
    long = corpus_bleu(["a b c d e f g h"], ["a b c d e"])
    assert long.brevity_penalty == 1.0
    assert abs(long.score - sacrebleu.corpus_bleu(["a b c d e f g h"], [["a b c d e"]]).score) < TOL
    # a shorter hypothesis is penalised
    short = corpus_bleu(["a b c d"], ["a b c d e f g h"])
    assert abs(short.brevity_penalty - math.exp(1 - 8 / 4)) < 1e-12
    # clipping: "the" x7 matches at most twice against a reference with two "the"
    assert corpus_bleu(["the the the the the the the"], ["the cat is on the mat"]).matches[0] == 2


def test_errors():
    with pytest.raises(ValueError, match="references: expected 2"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="expected 1 references"):
        corpus_bleu(["a"], [["a"], ["a", "b"]])
    with pytest.raises(TypeError, match="hypotheses"):
        corpus_bleu("a b", ["a b"])
    with pytest.raises(ValueError, match="smooth_method"):
        corpus_bleu(["a"], ["a"], smooth_method="bogus")
    with pytest.raises(TypeError, match="hypothesis"):
        sentence_bleu(["a"], ["a"])
    with pytest.raises(ValueError, match="mean_nll"):
        perplexity(-1.0)


WORDS = ["the", "cat", "dog", "sat", "on", "mat", "a", "is", ",", ".", "3.5", "x-y", "(", ")"]
sentences = st.lists(st.sampled_from(WORDS), min_size=0, max_size=12).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(sentences, sentences), min_size=1, max_size=6))
def test_random_corpora_match_sacrebleu(pairs):
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    assert abs(corpus_bleu(hyps, refs).score - sacrebleu.corpus_bleu(hyps, [refs]).score) < TOL
    for h, r in pairs:
        assert abs(sentence_bleu(h, r).score - sacrebleu.sentence_bleu(h, [r]).score) < TOL


def test_perplexity_is_exp_of_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=g)
    targets = torch.randint(0, 7, (2, 5), generator=g)
    targets[1, 3:] = -100
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1), ignore_index=-100)
    assert abs(sequence_perplexity(logits, targets) - math.exp(ce.item())) < 1e-4
    uniform = torch.zeros(1, 4, 7)
    assert abs(sequence_perplexity(uniform, torch.zeros(1, 4, dtype=torch.long)) - 7) < 1e-4

def test_token_f1_matches_definition():
    gold = torch.tensor([[-100, 1, 0, 1, 0, -100]])
    pred = torch.tensor([[1, 1, 1, 0, 0, 1]])  # positions with gold -100 are ignored
    assert token_f1(pred, gold) == pytest.approx(0.5)  # P = 1/2, R = 1/2
    assert token_f1(torch.zeros_like(gold), gold) == 0.0


    with pytest.raises(ValueError, match="pred: expected the shape"):
        token_f1(pred[:, :3], gold)


def test_accuracy_ignores_masked_positions():
    gold = torch.tensor([1, 0, -100, 1])
    assert accuracy(torch.tensor([1, 1, 0, 1]), gold) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="nothing to score"):
        accuracy(torch.tensor([1]), torch.tensor([-100]))
