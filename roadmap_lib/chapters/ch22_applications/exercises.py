"""The checks of chapter 22's exercises, with the common mistakes each one recognises.

Each check builds its own cases and expected answers (worked out by hand in seqeval's default,
conlleval, conventions: see :mod:`roadmap_lib.tagging`), so the notebook's namespace holds no
reference a student could call; a wrong answer that equals one of the declared mistakes is named.
"""

from __future__ import annotations

import math

import torch

from roadmap_lib.exercises import ExerciseError, check_equal, check_function
from roadmap_lib.metrics import bleu_from_statistics, bleu_statistics, corpus_bleu
from roadmap_lib.qa import best_span
from roadmap_lib.tagging import bio_to_spans, span_scores

# ---- exercise 22.1: BIO tags -> spans ----------------------------------------------------------

BIO_CASES = [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    (["O", "O", "B-ORG", "I-ORG", "I-ORG"], [("ORG", 2, 5)]),
    (["B-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)]),
    (["O", "I-PER", "I-PER", "O"], [("PER", 1, 3)]),  # I- without B- opens a span (default mode)
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),  # a type change opens a span
    (["O", "O"], []),
]


def _decode(tags, *, stray_inside=True, type_change=True, inclusive=False):
    spans, kind, start = [], None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, label = (tag[0], tag[2:]) if tag != "O" else ("O", "")
        continues = prefix == "I" and kind is not None and (label == kind or not type_change)
        if kind is not None and not continues:
            spans.append((kind, start, i - 1 if inclusive else i))
            kind = None
        if prefix == "B" or (prefix == "I" and not continues and stray_inside):
            kind, start = label, i
    return spans


BIO_MISTAKES = {
    "an I- tag that follows O (or another type) is dropped: in the default (conlleval) reading it opens a span":
        lambda tags: _decode(tags, stray_inside=False),
    "an I- of another type continues the open span: a type change must close it and open a new one":
        lambda tags: _decode(tags, type_change=False),
    "the end is the span's last index (inclusive); it should be one past it, as in tokens[start:end]":
        lambda tags: _decode(tags, inclusive=True),
}


def check_bio_to_spans(fn) -> None:
    """Exercise 22.1: ``fn(tags) -> [(type, start, end), ...]`` in the default reading, end exclusive.
    Calling the library's :func:`~roadmap_lib.tagging.bio_to_spans` is refused."""
    try:
        check_equal(fn, [((list(t),), s) for t, s in BIO_CASES], forbid=(bio_to_spans,))
    except ExerciseError as err:
        for description, wrong in BIO_MISTAKES.items():
            if _makes(fn, wrong):
                raise ExerciseError(f"likely mistake: {description}. Details: {err}") from None
        raise


def _makes(fn, wrong) -> bool:
    """Does ``fn`` answer every case as the mistaken decoder ``wrong`` does?"""
    try:
        return all([tuple(s) for s in fn(list(t))] == wrong(t) for t, _ in BIO_CASES)
    except Exception:  # noqa: BLE001  (an answer that crashes on a case makes none of the mistakes)
        return False


# ---- exercise 22.2: span-level F1 ---------------------------------------------------------------

SPAN_F1_CASES = [
    # (predicted spans per sentence, gold spans per sentence) -> micro F1
    (([[("PER", 0, 2)], [("ORG", 1, 3), ("PER", 0, 1)]], [[("PER", 0, 2), ("LOC", 3, 4)], [("ORG", 1, 4)]]), 1 / 3),
    (([[("X", 0, 1)], [], [("X", 2, 3)]], [[("X", 0, 1)], [("X", 1, 2)], [("X", 2, 3)]]), 0.8),
    (([[("X", 0, 2)]], [[("X", 0, 3)]]), 0.0),
    (([[("A", 0, 1)]], [[("B", 0, 1)]]), 0.0),
    (([[], []], [[], [("X", 0, 1)]]), 0.0),
    (([[("X", 0, 1), ("X", 3, 5)], [("Y", 2, 4)]], [[("X", 0, 1)], [("Y", 2, 4), ("X", 0, 1)]]), 2 * (2 / 3 * 2 / 3) / (4 / 3)),
]


def _f1(p, r):
    return 2 * p * r / (p + r) if p + r else 0.0


def _micro(pred, gold, key=lambda s: tuple(s)):
    correct = sum(len({key(s) for s in p} & {key(s) for s in g}) for p, g in zip(pred, gold))
    n_pred, n_gold = sum(map(len, pred)), sum(map(len, gold))
    return _f1(correct / n_pred if n_pred else 0.0, correct / n_gold if n_gold else 0.0)


def _precision(pred, gold):
    right = sum(len(set(map(tuple, p)) & set(map(tuple, g))) for p, g in zip(pred, gold))
    n_pred = sum(map(len, pred))
    return right / n_pred if n_pred else 0.0


def _sentence_average(pred, gold):
    scores = [_micro([p], [g]) for p, g in zip(pred, gold)]
    return sum(scores) / len(scores)


SPAN_F1_MISTAKES = {
    "a span is counted right when its type and start match, whatever its end":
        lambda pred, gold: _micro(pred, gold, key=lambda s: (s[0], s[1])),
    "the type is ignored: a span is counted right when its start and end match":
        lambda pred, gold: _micro(pred, gold, key=lambda s: (s[1], s[2])),
    "F1 is averaged over sentences; the corpus F1 sums the counts over all sentences first, then divides":
        _sentence_average,
    "this is the precision (right spans / predicted spans), not F1":
        lambda pred, gold: _precision(pred, gold),
}


def check_span_f1(fn) -> None:
    """Exercise 22.2: ``fn(pred_spans, gold_spans) -> float``, micro span F1 over sentences.
    Calling the library's :func:`~roadmap_lib.tagging.span_scores` is refused."""
    check_function(fn, SPAN_F1_CASES, mistakes=SPAN_F1_MISTAKES, forbid=(span_scores,))


__all__ = ["BIO_MISTAKES", "SPAN_F1_MISTAKES", "check_bio_to_spans", "check_span_f1"]


# ---- exercise 22.4: the best valid answer span -----------------------------------------------------


def _spans(seq: int, max_len: int, *, min_len: int = 1, ordered: bool = True):
    for i in range(seq):
        for j in range(seq):
            if (i <= j or not ordered) and min_len <= abs(j - i) + 1 <= max_len:
                yield i, j


def _best(start_logits, end_logits, max_len, **kwargs):
    s, e = start_logits.tolist(), end_logits.tolist()
    return max(_spans(len(s), max_len, **kwargs), key=lambda ij: s[ij[0]] + e[ij[1]])


def _span_cases():
    hand = [  # (start logits, end logits, max_answer_len) -> (start, end), end inclusive; no ties
        ([0.0, 0.0, 0.0, 5.0], [5.0, 0.0, 1.0, 0.5], 3),  # independent argmaxes give (3, 0): not a span
        ([5.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 3.0, 4.0], 3),  # (0, 3) would be 4 words: too long
        ([5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], 3),  # exactly max_answer_len words is allowed
        ([0.3, 2.0, -1.0, 0.5, 0.1], [0.2, -0.5, 1.5, 0.4, 3.0], 2),
    ]
    cases = [((torch.tensor(s), torch.tensor(e), n), _best(torch.tensor(s), torch.tensor(e), n)) for s, e, n in hand]
    g = torch.Generator().manual_seed(22)
    for seq, n in ((6, 3), (9, 4), (12, 5)):
        s, e = torch.randn(seq, generator=g), torch.randn(seq, generator=g)
        cases.append(((s, e, n), _best(s, e, n)))
    return cases


SPAN_MISTAKES = {
    "start and end are chosen independently (the argmax of each): the end can come before the start, "
    "and the span can be too long":
        lambda s, e, n: (int(s.argmax()), int(e.argmax())),
    "spans that end before they start are allowed: require start <= end":
        lambda s, e, n: _best(s, e, n, ordered=False),
    "the length limit is off by one: start..end (end inclusive) has end - start + 1 words, at most "
    "max_answer_len":
        lambda s, e, n: _best(s, e, n + 1),
    "the length limit is one too strict: a span of exactly max_answer_len words is allowed":
        lambda s, e, n: _best(s, e, max(n - 1, 1)),
}


def check_best_span(fn) -> None:
    """Exercise 22.4: ``fn(start_logits (seq,), end_logits (seq,), max_answer_len) -> (start, end)``,
    ints, end inclusive. Calling the library's :func:`~roadmap_lib.qa.best_span` is refused."""
    check_equal(fn, _span_cases(), forbid=(best_span,), mistakes=SPAN_MISTAKES)


# ---- exercise 22.5: corpus BLEU from sentence statistics -------------------------------------------

BLEU_PAIRS = [  # (hypothesis, reference): every n-gram order has a match in the corpus, one short hypothesis
    ("the cat sat on the mat today", "the cat sat on the mat"),
    ("a dog ran in the big green park", "the dog ran in the big park"),
    ("my robot builds a small house", "my robot builds a small red house near the river"),
    ("no teacher saw the old wizard again", "no teacher saw the old wizard"),
]


def _bleu_cases():
    cases = []
    for rows in (BLEU_PAIRS, BLEU_PAIRS[:3], [BLEU_PAIRS[2], BLEU_PAIRS[0]]):
        stats = torch.tensor([bleu_statistics(h, [r]) for h, r in rows])
        cases.append(((stats,), torch.tensor(corpus_bleu([h for h, _ in rows], [r for _, r in rows]).score)))
    return cases


def _bleu_parts(total, *, brevity=True, geometric=True):
    hyp, ref = float(total[0]), float(total[1])
    p = [float(m) / float(t) for m, t in zip(total[2:6], total[6:10])]
    mean = math.exp(sum(math.log(x) for x in p) / 4) if geometric else sum(p) / 4
    bp = math.exp(1 - ref / hyp) if brevity and hyp < ref else 1.0
    return 100 * bp * mean


def _sentence_mean(stats):
    return sum(bleu_from_statistics(row.tolist()).score for row in stats) / len(stats)


BLEU_MISTAKES = {
    "this is the mean of sentence BLEUs; corpus BLEU sums every sentence's counts first, then takes "
    "the precisions, their geometric mean and one brevity penalty":
        _sentence_mean,
    "the brevity penalty is missing: a hypothesis shorter than its reference is not penalised":
        lambda stats: _bleu_parts(stats.sum(0), brevity=False),
    "the precisions are averaged arithmetically; BLEU takes their geometric mean":
        lambda stats: _bleu_parts(stats.sum(0), geometric=False),
}


def check_corpus_bleu(fn) -> None:
    """Exercise 22.5: ``fn(stats (n, 10)) -> BLEU`` (0-100) from per-sentence statistics
    ``[hyp_len, ref_len, matches_1..4, totals_1..4]``. Calling the library's BLEU is refused."""
    check_function(fn, _bleu_cases(), mistakes=BLEU_MISTAKES, forbid=(bleu_from_statistics, corpus_bleu),
                   atol=1e-4, rtol=1e-6)


__all__ += ["BLEU_MISTAKES", "SPAN_MISTAKES", "check_best_span", "check_corpus_bleu"]
