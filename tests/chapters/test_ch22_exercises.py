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
