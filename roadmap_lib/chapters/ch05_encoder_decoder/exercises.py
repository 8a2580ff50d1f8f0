"""The checks of chapter 05's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (BLEU's pieces from
``roadmap_lib.metrics``, verified against sacrebleu; the teacher-forcing tensors from
``roadmap_lib.data.pad_batch``) and declares, as small wrong implementations, the mistakes it names
in plain words ("likely mistake: ..."). Exercise 05.4 is a "predict, then measure" exercise: its
check compares predicted BLEU scores with the scores ``corpus_bleu`` measures, and names the tempting
wrong predictions.
"""

from __future__ import annotations

import math

import torch

from roadmap_lib.chapters.ch05_encoder_decoder.translation import BOS, EOS, PAD
from roadmap_lib.data import load_task, pad_batch
from roadmap_lib.exercises import ExerciseError, check_equal, check_function
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


# ---- exercise 05.4: when BLEU collapses, predicted then measured ---------------------------------

#: The word that replaces the middle word of each reference (not a word of the task's vocabulary).
NEW_WORD = "xyzzy"
#: How many references the measurement uses: the first test sentences whose reference has seven
#: different words (13a tokens).
BLEU_SENTENCES = 5


def bleu_cases(rows: list[dict] | None = None) -> dict[str, tuple[list[str], list[str], str]]:
    """The exercise's three corpora, ``{key: (hypotheses, references, smooth_method)}``, built from the
    first :data:`BLEU_SENTENCES` test sentences whose Zetan reference has seven different words:
    ``"one_wrong"`` (the fourth word replaced by :data:`NEW_WORD`, no smoothing), ``"one_wrong_exp"``
    (the same, sacrebleu's default ``exp`` smoothing) and ``"first_four"`` (the first four words
    only, no smoothing)."""
    rows = load_task("translation", "test") if rows is None else rows
    refs = [r["tgt"] for r in rows if len(set(tokenize_13a(r["tgt"]))) == len(tokenize_13a(r["tgt"])) == 7]
    if len(refs) < BLEU_SENTENCES:
        raise ValueError(f"rows: expected at least {BLEU_SENTENCES} references of seven different words, "
                         f"got {len(refs)}")
    refs = refs[:BLEU_SENTENCES]
    words = [ref.split() for ref in refs]
    one_wrong = [" ".join(w[:3] + [NEW_WORD] + w[4:]) for w in words]
    first_four = [" ".join(w[:4]) for w in words]
    return {"one_wrong": (one_wrong, refs, "none"), "one_wrong_exp": (one_wrong, refs, "exp"),
            "first_four": (first_four, refs, "none")}


def measured_bleu(key: str, cases=None) -> float:
    """Corpus BLEU of one of :func:`bleu_cases`, by ``roadmap_lib.metrics.corpus_bleu`` (sacrebleu's)."""
    hyps, refs, smooth = (cases or bleu_cases())[key]
    return corpus_bleu(hyps, refs, smooth_method=smooth).score


def _stats(key: str, cases=None):
    """(precisions p_1..p_4 as fractions, unsmoothed; hypothesis length; reference length)."""
    hyps, refs, _ = (cases or bleu_cases())[key]
    s = corpus_bleu(hyps, refs, smooth_method="none")
    return [m / t for m, t in zip(s.matches, s.totals)], s.hyp_len, s.ref_len


def _only(*keys):
    """A mistake that is made on some of the keys: the others raise, so it is never matched there."""
    def wrap(f):
        def wrong(key):
            if key not in keys:
                raise KeyError(key)
            return f(key)
        return wrong
    return wrap


@_only("one_wrong", "one_wrong_exp")
def _arithmetic_mean(key):
    p, _, _ = _stats(key)
    return 100 * sum(p) / 4


@_only("one_wrong", "one_wrong_exp")
def _word_accuracy(key):
    return 100 * _stats(key)[0][0]


@_only("one_wrong", "one_wrong_exp")
def _skip_zero_order(key):
    p = [x for x in _stats(key)[0] if x > 0]
    return 100 * math.prod(p) ** (1 / len(p))


@_only("one_wrong_exp")
def _exp_without_halving(key):
    p, _, _ = _stats(key)
    hyps, _, _ = bleu_cases()[key]
    total_4 = sum(max(len(h.split()) - 3, 0) for h in hyps)
    return 100 * math.prod(p[:3] + [1 / total_4]) ** 0.25


@_only("one_wrong_exp")
def _exp_one_sentence(key):
    p, _, _ = _stats(key)
    return 100 * math.prod(p[:3] + [1 / (2 * 4)]) ** 0.25  # one sentence's four 4-grams


@_only("first_four")
def _no_brevity_penalty(key):
    return 100.0


@_only("first_four")
def _length_ratio_penalty(key):
    _, c, r = _stats(key)
    return 100 * c / r


BLEU_PREDICTION_MISTAKES = {
    "the arithmetic mean of the precisions: BLEU takes their geometric mean, so a zero precision "
    "(no 4-gram matches) makes the unsmoothed score 0": _arithmetic_mean,
    "the fraction of right words (the unigram precision): BLEU also needs the 2-, 3- and 4-grams, "
    "and one wrong word in the middle of seven breaks every 4-gram": _word_accuracy,
    "the geometric mean of the orders that matched: an order with no match is not skipped, its "
    "log-precision is minus infinity without smoothing": _skip_zero_order,
    "exp smoothing gives the first order with no match 1/(2·total), not 1/total": _exp_without_halving,
    "the smoothed 4-gram precision uses one sentence's total: corpus BLEU adds the counts of all the "
    "sentences first, so the total is the corpus's number of 4-grams": _exp_one_sentence,
    "the brevity penalty is left out: every n-gram of a truncated hypothesis matches, only the "
    "penalty e^(1 - r/c) charges for the missing words": _no_brevity_penalty,
    "the brevity penalty is the length ratio c/r: it is e^(1 - r/c)": _length_ratio_penalty,
}


def check_bleu_predictions(fn) -> dict[str, float]:
    """Exercise 05.4: ``fn()`` returns ``{"one_wrong": ..., "one_wrong_exp": ..., "first_four": ...}``,
    predicted corpus BLEU scores (0-100) of :func:`bleu_cases`, compared with
    :func:`measured_bleu` within 0.1 BLEU. Prints both and returns the measurements."""
    try:
        predictions = fn()
    except NotImplementedError as err:
        raise ExerciseError(f"{getattr(fn, '__name__', 'your function')} is not written yet "
                            "(it raised NotImplementedError).") from err
    cases = bleu_cases()
    measured = {key: measured_bleu(key, cases) for key in cases}
    if not isinstance(predictions, dict) or set(predictions) != set(measured):
        got = sorted(predictions) if isinstance(predictions, dict) else type(predictions).__name__
        raise ExerciseError(f"the prediction should be a dict with the keys {sorted(measured)}, got {got}")
    check_function(lambda key: predictions[key], [((key,), torch.tensor(value)) for key, value in measured.items()],
                   name="predicted BLEU", atol=0.1, rtol=0, mistakes=BLEU_PREDICTION_MISTAKES)
    for key, value in measured.items():
        print(f"{key:<14} predicted {float(predictions[key]):6.2f}   measured {value:6.2f}")
    return measured
