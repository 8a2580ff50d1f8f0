"""The checks of chapter 05's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (BLEU's pieces from
``roadmap_lib.metrics``, verified against sacrebleu; the teacher-forcing tensors from
``roadmap_lib.data.pad_batch``) and declares, as small wrong implementations, the mistakes it names
in plain words ("likely mistake: ...").
"""

from __future__ import annotations

import math

import torch

from roadmap_lib.chapters.ch05_encoder_decoder.translation import BOS, EOS, PAD
from roadmap_lib.data import pad_batch
from roadmap_lib.exercises import check_equal, check_function
from roadmap_lib.metrics import bleu_statistics, corpus_bleu, ngrams, tokenize_13a

# ---- exercise 05.1: the brevity penalty ----------------------------------------------------------


def _exp_penalty(c, r):
    return math.exp(1 - r / c)


BREVITY_MISTAKES = {
    "the ratio is upside down: the exponent is 1 - r/c (reference over hypothesis length), not 1 - c/r":
        lambda c, r: 0.0 if c == 0 else (1.0 if c >= r else math.exp(1 - c / r)),
    "the sign of the exponent is flipped: e^(1 - r/c) is below 1 for a short hypothesis, e^(r/c - 1) above":
        lambda c, r: 0.0 if c == 0 else (1.0 if c >= r else math.exp(r / c - 1)),
    "a long hypothesis is penalised too: the penalty is 1 whenever the hypothesis is at least as long "
    "as the reference":
        lambda c, r: 0.0 if c == 0 else _exp_penalty(c, r),
    "the empty hypothesis is not handled first: r/c divides by zero when c = 0":
        lambda c, r: 1.0 if c >= r else _exp_penalty(c, r),
}


def check_brevity_penalty(fn) -> None:
    """Exercise 05.1: ``fn(hyp_len, ref_len)`` against the brevity penalty of a corpus BLEU."""
    cases = [((c, r), torch.tensor(corpus_bleu([" ".join("w" * c)], [" ".join("w" * r)]).brevity_penalty))
             for c, r in [(5, 5), (7, 5), (4, 8), (1, 3), (9, 10), (0, 4)]]
    check_function(fn, cases, name="brevity_penalty", mistakes=BREVITY_MISTAKES)


# ---- exercise 05.2: clipped n-gram matches -------------------------------------------------------

CLIPPED_MISTAKES = {
    "the counts are not clipped: a hypothesis n-gram counts at most as often as the reference has it":
        lambda h, r, n: sum(c for g, c in ngrams(h, n).items() if g in ngrams(r, n)),
    "each distinct n-gram counts once: it should count min(its count in the hypothesis, in the reference)":
        lambda h, r, n: sum(1 for g in ngrams(h, n) if g in ngrams(r, n)),
    "the reference's count is used: it should be the smaller of the two counts":
        lambda h, r, n: sum(ngrams(r, n)[g] for g in ngrams(h, n) if g in ngrams(r, n)),
}

_PAIRS = [
    ("the the the", "the cat"),
    ("the the cat", "the the the cat"),
    ("a b c d a b", "a b a b c"),
    ("the cat sat on the mat .", "the cat is on the mat ."),
    ("there is a cat on the mat , on the mat .", "a cat is on the mat ."),
]


def check_clipped_matches(fn) -> None:
    """Exercise 05.2: ``fn(hyp, ref, n)`` against the clipped matches of ``bleu_statistics``."""
    cases = []
    for hyp, ref in _PAIRS:
        stats = bleu_statistics(hyp, [ref])
        cases += [((tokenize_13a(hyp), tokenize_13a(ref), n), stats[1 + n]) for n in (1, 2, 3, 4)]
    check_equal(fn, cases, name="clipped_matches", mistakes=CLIPPED_MISTAKES)


# ---- exercise 05.3: teacher-forcing inputs -------------------------------------------------------


def _io(targets, *, in_pad=PAD, out_pad=-100, start=BOS, end=EOS, eos=True):
    width = max(len(t) for t in targets) + 1
    tgt_in = [[start] + t + [in_pad] * (width - 1 - len(t)) for t in targets]
    tgt_out = [t + ([end] if eos else []) + [out_pad] * (width - len(t) - eos) for t in targets]
    return torch.tensor(tgt_in), torch.tensor(tgt_out)


DECODER_IO_MISTAKES = {
    "tgt_out is padded with PAD: the targets' padding must be -100, the value the loss ignores":
        lambda t: _io(t, out_pad=PAD),
    "tgt_in is padded with -100: -100 is the loss's ignore value; the decoder's inputs are padded with "
    "PAD, an id the embedding can look up":
        lambda t: _io(t, in_pad=-100),
    "the EOS is missing from tgt_out: the model must learn to predict the end of the sentence":
        lambda t: _io(t, eos=False),
    "BOS and EOS are swapped: the input starts with BOS, the target ends with EOS":
        lambda t: _io(t, start=EOS, end=BOS),
}


def check_decoder_io(fn) -> None:
    """Exercise 05.3: ``fn(targets) -> (tgt_in, tgt_out)``, int64, padded as ``make_batch`` does."""
    cases = []
    for targets in ([[7, 8, 9], [10], [11, 12, 13, 14]], [[20, 21], [22, 23]], [[30, 31, 32, 33, 34]]):
        expected = (pad_batch([[BOS] + t for t in targets], PAD), pad_batch([t + [EOS] for t in targets], -100))
        cases.append(((targets,), expected))
    check_function(fn, cases, name="decoder_io", outputs=("tgt_in", "tgt_out"), check_dtype=True,
                   mistakes=DECODER_IO_MISTAKES)
