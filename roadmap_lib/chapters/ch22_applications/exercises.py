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


# ---- exercise 22.6: reciprocal rank fusion ---------------------------------------------------------

def _fuse(rankings, k, *, from_zero=False, constant=True):
    score = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=0 if from_zero else 1):
            score[doc] = score.get(doc, 0.0) + 1.0 / ((k if constant else 0) + rank)
    return sorted(score, key=lambda d: -score[d])


def _rank_sum(rankings, k):
    total = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            total[doc] = total.get(doc, 0) + rank
    return sorted(total, key=lambda d: total[d])


def _no_ties(rankings, k) -> bool:
    score = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            score[doc] = score.get(doc, 0.0) + 1.0 / (k + rank)
    values = sorted(score.values())
    return all(b - a > 1e-9 for a, b in zip(values, values[1:]))


def _rrf_cases():
    import random

    hand = [
        ([[3, 1, 2], [1, 2, 3, 4]], 60),  # 1 is near the top of both lists: first
        ([[7, 8, 9, 4], [4, 9, 5]], 2),  # a small k lets one first place dominate
        ([[5, 6], [6, 1], [1, 6, 5]], 3),
        ([[0, 1, 2, 3, 4], [4, 3, 2]], 2),
    ]
    rng = random.Random(22)
    while len(hand) < 10:
        rankings = [rng.sample(range(12), rng.randint(3, 8)) for _ in range(rng.randint(2, 3))]
        k = rng.choice((2, 5, 60))
        if _no_ties(rankings, k):
            hand.append((rankings, k))
    assert all(_no_ties(r, k) for r, k in hand)
    return [((r, k), _fuse(r, k)) for r, k in hand]


RRF_MISTAKES = {
    "ranks are counted from 0; RRF's ranks start at 1, so the best document scores 1 / (k + 1)":
        lambda r, k: _fuse(r, k, from_zero=True),
    "the constant k is missing: 1 / rank lets a single first place outweigh a document that is near "
    "the top of every list":
        lambda r, k: _fuse(r, k, constant=False),
    "this sorts by the sum of ranks over the lists that contain a document; RRF sums 1 / (k + rank), "
    "so a document missing from a list adds nothing instead of counting as good":
        _rank_sum,
}


def check_rrf(fn) -> None:
    """Exercise 22.6: ``fn(rankings, k) -> fused id list``, best first, every id that appears in a
    ranking exactly once. Calling the library's :func:`~roadmap_lib.retrieval.rrf` is refused."""
    from roadmap_lib.retrieval import rrf

    check_equal(fn, _rrf_cases(), forbid=(rrf,), mistakes=RRF_MISTAKES)


__all__ += ["RRF_MISTAKES", "check_rrf"]


# ---- exercise 22.7: ROUGE-L from tokens -------------------------------------------------------------

ROUGE_PAIRS = [  # (target tokens, prediction tokens)
    ("the cat sat on the mat".split(), "the cat lay on a mat".split()),
    ("a program that copies itself over a network".split(), "copies itself a network program".split()),
    ("hack value is the reason".split(), "the reason is hack value".split()),
    ("foo bar baz".split(), "qux quux".split()),
    ("one two three four five".split(), "two four one three five".split()),
]


def _lcs(a, b) -> int:
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a)):
        for j in range(len(b)):
            t[i + 1][j + 1] = t[i][j] + 1 if a[i] == b[j] else max(t[i][j + 1], t[i + 1][j])
    return t[-1][-1]


def _substring(a, b) -> int:
    best = 0
    for i in range(len(a)):
        for j in range(len(b)):
            n = 0
            while i + n < len(a) and j + n < len(b) and a[i + n] == b[j + n]:
                n += 1
            best = max(best, n)
    return best


def _overlap(a, b) -> int:
    from collections import Counter
    return sum((Counter(a) & Counter(b)).values())


def _f_from(hits, target, pred, which="f"):
    p, r = hits / len(pred), hits / len(target)
    return {"p": p, "r": r, "f": 2 * p * r / (p + r) if hits else 0.0}[which]


def _rouge_cases():
    from roadmap_lib.metrics import rouge
    return [((t, p), torch.tensor(rouge(" ".join(t), " ".join(p), ("rougeL",))["rougeL"].fmeasure)) for t, p in ROUGE_PAIRS]


ROUGE_MISTAKES = {
    "this is the recall (LCS / target length) alone; ROUGE-L F1 combines it with the precision":
        lambda t, p: _f_from(_lcs(t, p), t, p, "r"),
    "this is the precision (LCS / prediction length) alone; ROUGE-L F1 combines it with the recall":
        lambda t, p: _f_from(_lcs(t, p), t, p, "p"),
    "this counts the longest common *substring* (contiguous); ROUGE-L's LCS is a subsequence: "
    "matching words in order, gaps allowed":
        lambda t, p: _f_from(_substring(t, p), t, p),
    "this counts shared words in any order (ROUGE-1); ROUGE-L counts only words that appear in the "
    "same order in both":
        lambda t, p: _f_from(_overlap(t, p), t, p),
}


def check_rouge_l(fn) -> None:
    """Exercise 22.7: ``fn(target_tokens, prediction_tokens) -> ROUGE-L F1`` (a float in [0, 1]).
    Calling the library's :func:`~roadmap_lib.metrics.rouge` is refused."""
    from roadmap_lib.metrics import rouge

    check_function(fn, _rouge_cases(), mistakes=ROUGE_MISTAKES, forbid=(rouge,), atol=1e-9, rtol=1e-9)


# ---- exercise 22.8: which characters carry the loss in a dialogue ---------------------------------------

def _counted(text, *, shifted=True, marker=False, newline=True, everything=False):
    flags = []
    for line in text.splitlines(keepends=True):
        assistant = line.startswith("a:") or everything
        for i, _ in enumerate(line):
            is_marker = i < 2
            is_newline = i == len(line) - 1 and line.endswith("\n")
            flags.append(assistant and (marker or not is_marker or everything) and (newline or not is_newline))
    return flags[1:] if shifted else flags[:-1]


def _mask_cases():
    from roadmap_lib.chapters.ch22_applications.dialogue import Exchange

    texts = [Exchange("eve", "jazz", True, "name").text(), Exchange("bob", "tea", False, "thing").text(),
             "u:hi\na:yo\n", "a:first\nu:then me\na:ok\n"]
    return [((t,), _counted(t)) for t in texts]


MASK_MISTAKES = {
    "the flags are not shifted: position i predicts character i + 1, so flag i says whether "
    "character i + 1 is an assistant character":
        lambda t: _counted(t, shifted=False),
    "the 'a:' marker is counted: it is part of the template (the prompt the user's side supplies), "
    "not of the answer":
        lambda t: _counted(t, marker=True),
    "the newline that ends an assistant turn is not counted: without it the model never learns to "
    "stop its turn":
        lambda t: _counted(t, newline=False),
    "every character is counted: that is plain language-model training, which also teaches the model "
    "to write the user's turns":
        lambda t: _counted(t, everything=True),
}


def check_assistant_mask(fn) -> None:
    """Exercise 22.8: ``fn(text) -> list of len(text) - 1 bools``: flag ``i`` is True when the
    target at position ``i`` (character ``i + 1``) is counted in the loss."""
    from roadmap_lib.chapters.ch22_applications.dialogue import encode_with_targets

    check_equal(fn, _mask_cases(), forbid=(encode_with_targets,), mistakes=MASK_MISTAKES)


__all__ += ["MASK_MISTAKES", "ROUGE_MISTAKES", "check_assistant_mask", "check_rouge_l"]
