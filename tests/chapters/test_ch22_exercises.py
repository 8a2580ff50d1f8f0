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


def _student_rrf(start=1, use_k=True, rank_sum=False):
    def fuse(rankings, k):
        score = {}
        for ranking in rankings:
            for i, doc in enumerate(ranking):
                rank = i + start
                if rank_sum:
                    score[doc] = score.get(doc, 0) - rank  # higher is better: minus the summed rank
                else:
                    score[doc] = score.get(doc, 0) + 1 / ((k if use_k else 0) + rank)
        return [d for d, _ in sorted(score.items(), key=lambda kv: kv[1], reverse=True)]
    return fuse


def test_rrf_reference_passes():
    X.check_rrf(_student_rrf())


@pytest.mark.parametrize("student, words", [
    (_student_rrf(start=0), "ranks are counted from 0"),
    (_student_rrf(use_k=False), "constant k is missing"),
    (_student_rrf(rank_sum=True), "sum of ranks"),
])
def test_rrf_mistakes_are_named(student, words):
    with pytest.raises(ExerciseError, match=f"likely mistake: .*{words}"):
        X.check_rrf(student)


def test_rrf_unrelated_wrong_answer_fails_without_a_diagnosis():
    with pytest.raises(ExerciseError) as err:
        X.check_rrf(lambda rankings, k: sorted({d for r in rankings for d in r}))
    assert "likely mistake" not in str(err.value)


def test_rrf_library_call_is_refused():
    from roadmap_lib.retrieval import rrf

    with pytest.raises(ExerciseError, match="calls the library's own `rrf`"):
        X.check_rrf(lambda rankings, k: rrf(rankings, k))


def _student_rouge_l(kind="f", contiguous=False, any_order=False):
    def rouge_l(target, pred):
        if any_order:
            from collections import Counter
            hits = sum((Counter(target) & Counter(pred)).values())
        elif contiguous:
            hits = max([n for i in range(len(target)) for j in range(len(pred))
                        for n in [next((k for k in range(min(len(target) - i, len(pred) - j) + 1)
                                        if k == min(len(target) - i, len(pred) - j) or target[i + k] != pred[j + k]))]]
                       or [0])
        else:  # the LCS by memoised recursion (the notebook's solution fills a table)
            from functools import lru_cache

            @lru_cache(maxsize=None)
            def lcs(i, j):
                if i == len(target) or j == len(pred):
                    return 0
                return lcs(i + 1, j + 1) + 1 if target[i] == pred[j] else max(lcs(i + 1, j), lcs(i, j + 1))
            hits = lcs(0, 0)
        if hits == 0:
            return 0.0
        p, r = hits / len(pred), hits / len(target)
        return {"p": p, "r": r, "f": 2 * p * r / (p + r)}[kind]
    return rouge_l


def test_rouge_l_reference_passes():
    X.check_rouge_l(_student_rouge_l())


@pytest.mark.parametrize("student, words", [
    (_student_rouge_l(kind="r"), "recall"),
    (_student_rouge_l(kind="p"), "precision"),
    (_student_rouge_l(contiguous=True), "substring"),
    (_student_rouge_l(any_order=True), "ROUGE-1"),
])
def test_rouge_l_mistakes_are_named(student, words):
    with pytest.raises(ExerciseError, match=f"likely mistake: .*{words}"):
        X.check_rouge_l(student)


def test_rouge_l_library_call_is_refused():
    from roadmap_lib.metrics import rouge

    with pytest.raises(ExerciseError, match="calls the library's own `rouge`"):
        X.check_rouge_l(lambda t, p: rouge(" ".join(t), " ".join(p), ("rougeL",))["rougeL"].fmeasure)


def _student_mask(shift=True, marker=False, newline=True, everything=False):
    def counted(text):
        flags, in_turn = [], False
        for i, c in enumerate(text):
            line_start = i == 0 or text[i - 1] == "\n"
            if line_start:
                in_turn = text.startswith("a:", i)
            at_marker = in_turn and (line_start or (i >= 1 and text[i - 1] == "a" and (i < 2 or text[i - 2] == "\n")))
            ok = everything or (in_turn and (marker or not at_marker) and (newline or c != "\n"))
            flags.append(ok)
        return flags[1:] if shift else flags[:-1]
    return counted


def test_mask_reference_passes():
    X.check_assistant_mask(_student_mask())


@pytest.mark.parametrize("student, words", [
    (_student_mask(shift=False), "not shifted"),
    (_student_mask(marker=True), "marker is counted"),
    (_student_mask(newline=False), "newline that ends"),
    (_student_mask(everything=True), "every character is counted"),
])
def test_mask_mistakes_are_named(student, words):
    with pytest.raises(ExerciseError, match=f"likely mistake: .*{words}"):
        X.check_assistant_mask(student)


def test_mask_unrelated_wrong_answer_fails_without_a_diagnosis():
    with pytest.raises(ExerciseError) as err:
        X.check_assistant_mask(lambda text: [c != " " for c in text[1:]])
    assert "likely mistake" not in str(err.value)
