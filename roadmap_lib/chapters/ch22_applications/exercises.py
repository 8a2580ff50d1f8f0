"""The checks of chapter 22's exercises, with the common mistakes each one recognises.

Each check builds its own cases and expected answers (worked out by hand in seqeval's default,
conlleval, conventions: see :mod:`roadmap_lib.tagging`), so the notebook's namespace holds no
reference a student could call; a wrong answer that equals one of the declared mistakes is named.
"""

from __future__ import annotations

from roadmap_lib.exercises import ExerciseError, check_equal, check_function
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
