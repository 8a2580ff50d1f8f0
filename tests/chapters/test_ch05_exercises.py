"""Chapter 05's exercise checks: right answers pass, and each declared mistake, written the way a
student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest
import sacrebleu
import torch

from roadmap_lib.chapters.ch05_encoder_decoder import exercises as ex
from roadmap_lib.chapters.ch05_encoder_decoder.translation import BOS, EOS, PAD
from roadmap_lib.exercises import ExerciseError


def _named(check, fn, words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
        check(fn)


def bp(c, r):
    if c == 0:
        return 0.0
    return 1.0 if c >= r else math.exp(1 - r / c)


def grams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def clipped(hyp, ref, n):
    h, r = grams(hyp, n), grams(ref, n)
    return sum(min(c, r[g]) for g, c in h.items())


def decoder_io(targets, pad_in=PAD, pad_out=-100, bos=BOS, eos=EOS, add_eos=True):
    w = 1 + max(map(len, targets))
    tgt_in = torch.full((len(targets), w), pad_in)
    tgt_out = torch.full((len(targets), w), pad_out)
    for i, t in enumerate(targets):
        tgt_in[i, : len(t) + 1] = torch.tensor([bos, *t])
        tgt_out[i, : len(t) + add_eos] = torch.tensor([*t, eos][: len(t) + add_eos])
    return tgt_in, tgt_out


def test_right_answers_pass(capsys):
    ex.check_brevity_penalty(bp)
    ex.check_clipped_matches(clipped)
    ex.check_decoder_io(decoder_io)
    assert capsys.readouterr().out.count("Correct") == 3


def test_the_brevity_cases_are_sacrebleus():
    for c, r in [(4, 8), (1, 3), (0, 4)]:
        ours = sacrebleu.corpus_bleu([" ".join("w" * c)], [[" ".join("w" * r)]]).bp
        assert ours == pytest.approx(bp(c, r))


STUDENT_BREVITY = {
    "the ratio is upside down": lambda c, r: 0.0 if not c else (1.0 if c >= r else math.exp(1 - c / r)),
    "the sign of the exponent is flipped": lambda c, r: 0.0 if not c else (1.0 if c >= r else math.exp(r / c - 1)),
    "a long hypothesis is penalised too": lambda c, r: 0.0 if c == 0 else math.exp(1 - r / c),
    "the empty hypothesis is not handled first": lambda c, r: 1.0 if c >= r else math.exp(1 - r / c),
}

STUDENT_CLIPPED = {
    "the counts are not clipped": lambda h, r, n: sum(c for g, c in grams(h, n).items() if grams(r, n)[g]),
    "each distinct n-gram counts once": lambda h, r, n: len(set(grams(h, n)) & set(grams(r, n))),
    "the reference's count is used": lambda h, r, n: sum(grams(r, n)[g] for g in grams(h, n)),
}

STUDENT_IO = {
    "tgt_out is padded with PAD": lambda t: decoder_io(t, pad_out=PAD),
    "tgt_in is padded with -100": lambda t: decoder_io(t, pad_in=-100),
    "the EOS is missing from tgt_out": lambda t: decoder_io(t, add_eos=False),
    "BOS and EOS are swapped": lambda t: decoder_io(t, bos=EOS, eos=BOS),
}

ALL = [(ex.check_brevity_penalty, ex.BREVITY_MISTAKES, STUDENT_BREVITY),
       (ex.check_clipped_matches, ex.CLIPPED_MISTAKES, STUDENT_CLIPPED),
       (ex.check_decoder_io, ex.DECODER_IO_MISTAKES, STUDENT_IO)]


@pytest.mark.parametrize("check, words, fn", [(c, w, f) for c, _, s in ALL for w, f in s.items()])
def test_each_mistake_is_named(check, words, fn):
    _named(check, fn, words)


def test_every_declared_mistake_has_a_student_version():
    for _, declared, students in ALL:
        assert {d for d in declared for w in students if w in d} == set(declared)


def test_wrong_dtype_and_width_get_the_generic_messages():
    with pytest.raises(ExerciseError, match="tgt_in has dtype torch.float32, expected torch.int64"):
        ex.check_decoder_io(lambda t: tuple(x.float() for x in decoder_io(t)))
    with pytest.raises(ExerciseError, match=r"tgt_in has shape \(3, 4\), expected \(3, 5\)"):
        ex.check_decoder_io(lambda t: tuple(x[:, :-1] for x in decoder_io(t)))


# ---- exercise 05.4: BLEU predicted, then measured ---------------------------------------------------

def predicted_bleu(*, mean="geometric", smoothed_total=2 * 4 * 5, penalty="exp", words_only=False):
    """A student's three predictions for seven-word references with the fourth word wrong (five
    sentences), and for their first four words."""
    p = [6 / 7, 4 / 6, 2 / 5, 0.0]
    if words_only:
        one_wrong = one_wrong_exp = 100 * p[0]
    elif mean == "arithmetic":
        one_wrong, one_wrong_exp = 100 * sum(p) / 4, 100 * (sum(p[:3]) + 1 / smoothed_total) / 4
    elif mean == "nonzero":
        one_wrong = one_wrong_exp = 100 * math.prod(p[:3]) ** (1 / 3)
    else:
        one_wrong, one_wrong_exp = 0.0, 100 * math.prod(p[:3] + [1 / smoothed_total]) ** 0.25
    first_four = {"exp": 100 * math.exp(1 - 7 / 4), "none": 100.0, "ratio": 100 * 4 / 7}[penalty]
    return {"one_wrong": one_wrong, "one_wrong_exp": one_wrong_exp, "first_four": first_four}


def test_bleu_right_predictions_pass_and_the_scores_are_sacrebleus(capsys):
    measured = ex.check_bleu_predictions(predicted_bleu)
    out = capsys.readouterr().out
    assert "Correct" in out and "predicted" in out and "measured" in out
    cases = ex.bleu_cases()
    for key, (hyps, refs, smooth) in cases.items():
        theirs = sacrebleu.corpus_bleu(hyps, [refs], smooth_method=smooth).score
        assert measured[key] == pytest.approx(theirs, abs=1e-9)
    assert all(ex.NEW_WORD not in ref.split() and len(ref.split()) == 7 for ref in cases["one_wrong"][1])


STUDENT_BLEU = {
    "the arithmetic mean of the precisions": lambda: predicted_bleu(mean="arithmetic"),
    "the fraction of right words": lambda: predicted_bleu(words_only=True),
    "the geometric mean of the orders that matched": lambda: predicted_bleu(mean="nonzero"),
    "not 1/total": lambda: predicted_bleu(smoothed_total=4 * 5),
    "uses one sentence's total": lambda: predicted_bleu(smoothed_total=2 * 4),
    "the brevity penalty is left out": lambda: predicted_bleu(penalty="none"),
    "the brevity penalty is the length ratio c/r": lambda: predicted_bleu(penalty="ratio"),
}


@pytest.mark.parametrize("words", list(STUDENT_BLEU))
def test_each_bleu_prediction_mistake_is_named(words):
    _named(ex.check_bleu_predictions, STUDENT_BLEU[words], words)


def test_every_bleu_prediction_mistake_has_a_student_version():
    declared = ex.BLEU_PREDICTION_MISTAKES
    assert {d for d in declared for w in STUDENT_BLEU if w in d} == set(declared)


def test_a_bleu_prediction_that_is_not_written_or_not_a_dict_is_reported():
    def stub():
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not written yet"):
        ex.check_bleu_predictions(stub)
    with pytest.raises(ExerciseError, match="a dict with the keys"):
        ex.check_bleu_predictions(lambda: {"one_wrong": 0.0})
    with pytest.raises(ValueError, match="rows: expected at least 5 references"):
        ex.bleu_cases([{"src": "a", "tgt": "a b c d e f g"}])
