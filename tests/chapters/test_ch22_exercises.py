"""Chapter 22's exercise checks: the reference passes, each declared mistake written the way a
student would write it is named, and an unrelated wrong answer fails without a false diagnosis."""

import pytest

from roadmap_lib.chapters.ch22_applications import exercises as X
from roadmap_lib.exercises import ExerciseError
from roadmap_lib.tagging import bio_to_spans


def test_bio_library_call_is_refused():
    with pytest.raises(ExerciseError, match="calls the library's own `bio_to_spans`"):
        X.check_bio_to_spans(lambda tags: bio_to_spans(tags))


def test_span_f1_library_call_is_refused():
    from roadmap_lib.tagging import span_scores, spans_to_bio

    def via_library(pred, gold):
        n = 1 + max([e for sent in pred + gold for _, _, e in sent], default=0)
        return span_scores([spans_to_bio(p, n) for p in pred], [spans_to_bio(g, n) for g in gold]).f1

    with pytest.raises(ExerciseError, match="calls the library's own `span_scores`"):
        X.check_span_f1(via_library)


def _student_decoder(strict_i=False, ignore_type=False, inclusive=False):
    def decode(tags):
        out, cur = [], None
        for i, t in enumerate(tags):
            if t.startswith("B-"):
                if cur:
                    out.append(cur)
                cur = [t[2:], i, i]
            elif t.startswith("I-") and cur and (ignore_type or cur[0] == t[2:]):
                cur[2] = i
            elif t.startswith("I-") and not strict_i:
                if cur:
                    out.append(cur)
                cur = [t[2:], i, i]
            else:
                if cur:
                    out.append(cur)
                cur = None
        if cur:
            out.append(cur)
        return [(k, s, e if inclusive else e + 1) for k, s, e in out]
    return decode


@pytest.mark.parametrize("student, words", [
    (_student_decoder(strict_i=True), "is dropped"),
    (_student_decoder(ignore_type=True), "type change must close it"),
    (_student_decoder(inclusive=True), "inclusive"),
])
def test_bio_mistakes_are_named(student, words):
    X.check_bio_to_spans(_student_decoder())  # the student's right version passes
    with pytest.raises(ExerciseError, match=f"likely mistake: .*{words}"):
        X.check_bio_to_spans(student)


def test_bio_unrelated_wrong_answer_not_diagnosed():
    with pytest.raises(ExerciseError) as err:
        X.check_bio_to_spans(lambda tags: [])
    assert "likely mistake" not in str(err.value)
    with pytest.raises(ExerciseError, match="not written yet"):
        X.check_bio_to_spans(lambda tags: (_ for _ in ()).throw(NotImplementedError()))


def _student_f1(key=lambda s: s, per_sentence=False, precision_only=False):
    def f1(pred, gold):
        def one(ps, gs):
            right = len({key(s) for s in ps} & {key(s) for s in gs})
            p = right / len(ps) if ps else 0.0
            r = right / len(gs) if gs else 0.0
            if precision_only:
                return p
            return 2 * p * r / (p + r) if p + r else 0.0
        if per_sentence:
            return sum(one(p, g) for p, g in zip(pred, gold)) / len(pred)
        # the corpus count: every span tagged with its sentence's index, then one big comparison
        return one([(i, *x) for i, p in enumerate(pred) for x in p], [(i, *x) for i, g in enumerate(gold) for x in g])
    return f1


def test_span_f1_reference_passes():
    X.check_span_f1(_student_f1())


@pytest.mark.parametrize("student, words", [
    (_student_f1(key=lambda s: s[:3]), "type and start match"),  # (sentence, type, start)
    (_student_f1(key=lambda s: (s[0], s[2], s[3])), "type is ignored"),  # (sentence, start, end)
    (_student_f1(per_sentence=True), "averaged over sentences"),
    (_student_f1(precision_only=True), "precision"),
])
def test_span_f1_mistakes_are_named(student, words):
    with pytest.raises(ExerciseError, match=f"likely mistake: .*{words}"):
        X.check_span_f1(student)


# ---- exercise 22.4: best span ----------------------------------------------------------------------


def _student_span(order=True, longest=lambda n: n, independent=False):
    def best(start_logits, end_logits, max_answer_len):
        s, e = start_logits.tolist(), end_logits.tolist()
        if independent:
            return s.index(max(s)), e.index(max(e))
        top, arg = float("-inf"), None
        for i in range(len(s)):
            for j in range(len(e)):
                length = abs(j - i) + 1
                if (j >= i or not order) and length <= longest(max_answer_len) and s[i] + e[j] > top:
                    top, arg = s[i] + e[j], (i, j)
        return arg
    return best


def test_best_span_reference_passes():
    X.check_best_span(_student_span())


@pytest.mark.parametrize("student, words", [
    (_student_span(independent=True), "chosen independently"),
    (_student_span(order=False), "end before they start"),
    (_student_span(longest=lambda n: n + 1), "off by one"),
    (_student_span(longest=lambda n: n - 1), "one too strict"),
])
def test_best_span_mistakes_are_named(student, words):
    with pytest.raises(ExerciseError, match=f"likely mistake: .*{words}"):
        X.check_best_span(student)


def test_best_span_library_call_is_refused():
    from roadmap_lib.qa import best_span

    def via_library(s, e, n):
        a, b = best_span(s[None], e[None], max_answer_len=n)
        return int(a), int(b)

    with pytest.raises(ExerciseError, match="calls the library's own `best_span`"):
        X.check_best_span(via_library)


# ---- exercise 22.5: corpus BLEU from statistics ---------------------------------------------------


def _student_bleu(per_sentence=False, brevity=True, geometric=True):
    import math

    def one(t):
        hyp, ref = float(t[0]), float(t[1])
        p = [float(t[2 + k]) / float(t[6 + k]) for k in range(4)]
        mean = math.exp(sum(math.log(x) for x in p) / 4) if geometric else sum(p) / 4
        bp = math.exp(1 - ref / hyp) if brevity and hyp < ref else 1.0
        return 100 * bp * mean

    def bleu(stats):
        if per_sentence:
            return sum(one(row) for row in stats) / len(stats)
        return one(stats.sum(0))
    return bleu


def test_corpus_bleu_reference_passes():
    X.check_corpus_bleu(_student_bleu())


@pytest.mark.parametrize("student, words", [
    (_student_bleu(per_sentence=True), "mean of sentence BLEUs"),
    (_student_bleu(brevity=False), "brevity penalty is missing"),
    (_student_bleu(geometric=False), "averaged arithmetically"),
])
def test_corpus_bleu_mistakes_are_named(student, words):
    with pytest.raises(ExerciseError, match=f"likely mistake: .*{words}"):
        X.check_corpus_bleu(student)


def test_corpus_bleu_library_call_is_refused():
    from roadmap_lib.metrics import bleu_from_statistics

    with pytest.raises(ExerciseError, match="calls the library's own `bleu_from_statistics`"):
        X.check_corpus_bleu(lambda stats: bleu_from_statistics(stats.sum(0).tolist()).score)
