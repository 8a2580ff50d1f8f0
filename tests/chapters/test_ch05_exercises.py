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
