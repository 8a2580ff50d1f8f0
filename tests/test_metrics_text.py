"""chrF, ROUGE, SQuAD EM/F1 and classification metrics of roadmap_lib.metrics against the
implementations people quote: sacrebleu.CHRF, Google's rouge-score, the official SQuAD script's
logic (reproduced below, with hand-derived cases) and scikit-learn."""

import re
import string
from collections import Counter

import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from roadmap_lib.metrics import (
    classification_accuracy,
    corpus_bleu,
    corpus_chrf,
    normalize_answer,
    precision_recall_f1,
    rouge,
    rouge_tokenize,
    sentence_chrf,
    squad_exact_match,
    squad_f1,
)

HYPS = ["The cat sat on the mat.", "there is a cat on the mat", "a dog, 3.5 km away - really!",
        "", "completely unrelated words here", "the the the the the the the",
        "It's 10-20 (or so) items: a/b & c; \"quoted\" <tag> $5,000.00?", "Running runners ran quickly.",
        "Déjà vu: naïve café"]
REFS = ["The cat is on the mat.", "there is a cat on the mat", "the dog is 3.5 km away, really!",
        "an empty hypothesis", "nothing in common at all", "the cat is on the mat",
        "It is 10-20 items: a/b & c; \"quoted\" $5,000.00?", "The runner runs quick.", "deja vu: naive cafe"]
REFS2 = ["A cat was on the mat.", "a cat is on the mat", "a dog 3.5 km away", "empty",
         "unrelated words", "the cat", "10-20 items or so", "run, run, run", "déjà vu"]

TEXT = st.text(alphabet="abcde ,.!\n'-", max_size=40)


# ---- chrF -----------------------------------------------------------------------------------

@pytest.mark.parametrize("word_order", [0, 2])
@pytest.mark.parametrize("lowercase", [False, True])
def test_corpus_chrf_matches_sacrebleu(word_order, lowercase):
    ours = corpus_chrf(HYPS, [REFS, REFS2], word_order=word_order, lowercase=lowercase)
    metric = sacrebleu.CHRF(word_order=word_order, lowercase=lowercase)
    theirs = metric.corpus_score(HYPS, [REFS, REFS2]).score
    assert abs(ours - theirs) < 1e-9


@pytest.mark.parametrize("i", range(len(HYPS)))
def test_sentence_chrf_matches_sacrebleu(i):
    for word_order in (0, 2):
        ours = sentence_chrf(HYPS[i], [REFS[i], REFS2[i]], word_order=word_order)
        theirs = sacrebleu.sentence_chrf(HYPS[i], [REFS[i], REFS2[i]], word_order=word_order).score
        assert abs(ours - theirs) < 1e-9, (HYPS[i], ours, theirs)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=4), st.booleans())
def test_chrf_property_matches_sacrebleu(pairs, whitespace):
    hyps, refs = [h for h, _ in pairs], [r for _, r in pairs]
    ours = corpus_chrf(hyps, refs, whitespace=whitespace)
    assert abs(ours - sacrebleu.CHRF(whitespace=whitespace).corpus_score(hyps, [refs]).score) < 1e-9
    assert 0.0 <= ours <= 100.0


def test_chrf_identity_and_errors():
    assert sentence_chrf("a quick test", "a quick test") == 100.0
    with pytest.raises(ValueError, match="references: expected 2 references"):
        corpus_chrf(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="hypothesis: expected str"):
        sentence_chrf(3, "a")
    with pytest.raises(ValueError, match="at least one reference"):
        sentence_chrf("a", [])


def test_bleu_still_uses_shared_reference_checks():
    with pytest.raises(ValueError, match="references: expected 2 references"):
        corpus_bleu(["a", "b"], ["a"])


# ---- ROUGE ----------------------------------------------------------------------------------

TYPES = ["rouge1", "rouge2", "rouge3", "rougeL", "rougeLsum"]


@pytest.mark.parametrize("stem", [False, True])
@pytest.mark.parametrize("i", range(len(HYPS)))
def test_rouge_matches_rouge_score(i, stem):
    scorer = rouge_scorer.RougeScorer(TYPES, use_stemmer=stem)
    target = REFS[i] + "\n" + REFS2[i]  # two sentences, one per line, for rougeLsum
    theirs = scorer.score(target, HYPS[i])
    ours = rouge(target, HYPS[i], TYPES, stem=stem)
    for k in TYPES:
        for field in ("precision", "recall", "fmeasure"):
            assert abs(getattr(ours[k], field) - getattr(theirs[k], field)) < 1e-12, (k, field)


@settings(max_examples=80, deadline=None)
@given(TEXT, TEXT, st.booleans())
def test_rouge_property_matches_rouge_score(target, prediction, stem):
    theirs = rouge_scorer.RougeScorer(TYPES, use_stemmer=stem).score(target, prediction)
    ours = rouge(target, prediction, TYPES, stem=stem)
    for k in TYPES:
        assert abs(ours[k].fmeasure - theirs[k].fmeasure) < 1e-12, k


def test_rouge_tokenizer_conventions():
    # hand-derived: lower-case, non-[a-z0-9] split, accents vanish, stems only for tokens > 3 chars
    assert rouge_tokenize("Don't STOP-me, café 42!") == ["don", "t", "stop", "me", "caf", "42"]
    assert rouge_tokenize("running cats ran", stem=True) == ["run", "cat", "ran"]
    assert rouge_tokenize("uses", stem=True) == ["use"] and rouge_tokenize("was", stem=True) == ["was"]
    # hand-derived ROUGE-2: target bigrams {the cat, cat sat}, prediction {the cat, cat ran}
    r = rouge("the cat sat", "the cat ran", ["rouge2", "rougeL"])
    assert r["rouge2"].fmeasure == 0.5 and abs(r["rougeL"].fmeasure - 2 / 3) < 1e-12


def test_rouge_errors():
    with pytest.raises(ValueError, match="types: expected"):
        rouge("a", "a", ["rougeX"])
    with pytest.raises(TypeError, match="target, prediction: expected str"):
        rouge(["a"], "a")


# ---- SQuAD ----------------------------------------------------------------------------------
# The official evaluation script (v1.1 / v2.0), its normalisation and F1, verbatim in logic.

def _official_normalize(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def _official_f1(prediction, ground_truth):  # v2.0's compute_f1 (v1.1's plus the empty-answer rule)
    p, g = _official_normalize(prediction).split(), _official_normalize(ground_truth).split()
    if len(p) == 0 or len(g) == 0:
        return int(p == g)
    common = Counter(p) & Counter(g)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision, recall = num_same / len(p), num_same / len(g)
    return 2 * precision * recall / (precision + recall)


def test_squad_hand_derived():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple a day, theater") == "apple day theater"  # 'theater' keeps 'the'
    assert squad_exact_match("the Eiffel Tower.", ["Eiffel Tower", "Paris"]) == 1.0
    assert squad_exact_match("Eiffel", "Eiffel Tower") == 0.0
    # "in paris france" vs "paris": overlap 1, P = 1/3, R = 1 -> F1 = 0.5
    assert abs(squad_f1("in Paris, France", "Paris") - 0.5) < 1e-12
    # max over gold answers: "paris france" gives P = 2/3, R = 1 -> 0.8
    assert abs(squad_f1("in Paris, France", ["Paris", "Paris France"]) - 0.8) < 1e-12
    assert squad_f1("the", "a") == 1.0  # both empty after normalisation: the v2.0 rule
    assert squad_f1("", "Paris") == 0.0


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="abt he.,!A-", max_size=20), st.lists(st.text(alphabet="abt he.,!A-", max_size=20),
                                                            min_size=1, max_size=3))
def test_squad_matches_official_logic(prediction, golds):
    assert normalize_answer(prediction) == _official_normalize(prediction)
    assert squad_f1(prediction, golds) == max(_official_f1(prediction, g) for g in golds)
    assert squad_exact_match(prediction, golds) == float(
        max(_official_normalize(prediction) == _official_normalize(g) for g in golds))


def test_squad_errors():
    with pytest.raises(ValueError, match="gold_answers: expected at least one"):
        squad_f1("a", [])
    with pytest.raises(TypeError, match=r"gold_answers\[0\]: expected str"):
        squad_exact_match("a", [1])


# ---- classification ---------------------------------------------------------------------------

LABELS = st.lists(st.integers(0, 3), min_size=1, max_size=30)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_precision_recall_f1_match_sklearn(data):
    gold = data.draw(LABELS)
    pred = data.draw(st.lists(st.integers(0, 3), min_size=len(gold), max_size=len(gold)))
    for average in ("micro", "macro", "weighted"):
        ours = precision_recall_f1(pred, gold, average=average)
        theirs = precision_recall_fscore_support(gold, pred, average=average, zero_division=0)[:3]
        assert all(abs(a - b) < 1e-12 for a, b in zip(ours, theirs)), average
    per = precision_recall_f1(pred, gold, average=None)
    p, r, f, _ = precision_recall_fscore_support(gold, pred, average=None, zero_division=0,
                                                 labels=sorted(per))
    for k, label in enumerate(sorted(per)):
        assert max(abs(per[label][0] - p[k]), abs(per[label][1] - r[k]), abs(per[label][2] - f[k])) < 1e-12
    assert abs(classification_accuracy(pred, gold) - accuracy_score(gold, pred)) < 1e-12


def test_classification_labels_argument_and_strings():
    gold, pred = ["a", "b", "b", "c"], ["a", "b", "c", "c"]
    ours = precision_recall_f1(pred, gold, average="macro", labels=["a", "b"])
    theirs = precision_recall_fscore_support(gold, pred, average="macro", labels=["a", "b"], zero_division=0)
    assert all(abs(a - b) < 1e-12 for a, b in zip(ours, theirs[:3]))


def test_classification_errors():
    with pytest.raises(ValueError, match="average: expected"):
        precision_recall_f1([0], [0], average="binary")
    with pytest.raises(ValueError, match="pred: expected 2 labels"):
        precision_recall_f1([0], [0, 1])
    with pytest.raises(TypeError, match="gold: expected a 1-D tensor or a list"):
        classification_accuracy([0], "0")
