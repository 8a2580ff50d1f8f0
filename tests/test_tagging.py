"""BIO decoding and span F1 (roadmap_lib.tagging) against hand-derived cases in seqeval's conventions.

seqeval is not installed; each expected value below is worked out by hand from conlleval's rules
(default mode) and seqeval's strict IOB2 mode, as the module docstring states them.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roadmap_lib.tagging import bio_to_spans, span_scores, spans_to_bio


@pytest.mark.parametrize("tags, default, strict", [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)], [("PER", 0, 2), ("LOC", 3, 4)]),
    # I- without B-: default opens a span there, strict drops it
    (["O", "I-PER", "I-PER", "O"], [("PER", 1, 3)], []),
    (["I-PER"], [("PER", 0, 1)], []),
    # a type change inside a span: default gives two spans, strict keeps the well-formed one only
    (["B-PER", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 2)], [("PER", 0, 1)]),
    (["B-PER", "I-PER", "I-LOC", "I-LOC"], [("PER", 0, 2), ("LOC", 2, 4)], [("PER", 0, 2)]),
    # B- after B- of the same type: two adjacent spans in both modes
    (["B-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)], [("PER", 0, 1), ("PER", 1, 3)]),
    (["O", "O"], [], []),
    ([], [], []),
    # a span that runs to the end of the sentence is closed there
    (["O", "B-MISC", "I-MISC"], [("MISC", 1, 3)], [("MISC", 1, 3)]),
])
def test_bio_to_spans_hand_cases(tags, default, strict):
    assert bio_to_spans(tags) == default
    assert bio_to_spans(tags, strict=True) == strict


def test_span_scores_hand_case():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "I-ORG"]]
    # sentence 1: PER right, LOC missed; sentence 2: ORG cut short (wrong end) + a spurious PER
    pred = [["B-PER", "I-PER", "O", "O"], ["B-PER", "B-ORG", "I-ORG", "O"]]
    s = span_scores(pred, gold)
    assert (s.n_correct, s.n_pred, s.n_gold) == (1, 3, 3)
    assert s.precision == pytest.approx(1 / 3) and s.recall == pytest.approx(1 / 3)
    assert s.f1 == pytest.approx(1 / 3)
    per_type = span_scores(pred, gold, by_type=True)
    assert per_type["PER"].precision == pytest.approx(0.5) and per_type["PER"].recall == 1.0
    assert per_type["LOC"].f1 == 0.0 and per_type["LOC"].n_gold == 1
    assert per_type["ORG"].n_pred == 1 and per_type["ORG"].n_correct == 0
    assert per_type["micro"] == s


def test_strict_and_default_differ_on_stray_inside_tags():
    gold = [["O", "B-PER", "I-PER"]]
    pred = [["O", "I-PER", "I-PER"]]  # right span, but opened with I-
    assert span_scores(pred, gold).f1 == 1.0
    assert span_scores(pred, gold, strict=True).f1 == 0.0


def test_span_f1_is_not_token_f1():
    # 3 of 4 tokens right, but the one span is wrong: span F1 0, token accuracy 0.75
    gold, pred = [["B-X", "I-X", "I-X", "O"]], [["B-X", "I-X", "O", "O"]]
    assert span_scores(pred, gold).f1 == 0.0


def test_empty_prediction_scores_zero_not_nan():
    s = span_scores([["O", "O"]], [["B-X", "O"]])
    assert (s.precision, s.recall, s.f1) == (0.0, 0.0, 0.0)


tag_lists = st.lists(st.sampled_from(["O", "B-A", "I-A", "B-B", "I-B"]), max_size=12)


@given(tag_lists)
def test_spans_roundtrip_and_strict_subset(tags):
    default = bio_to_spans(tags)
    # default-mode spans re-encoded are well-formed tags with the same spans, in both modes
    fixed = spans_to_bio(default, len(tags))
    assert bio_to_spans(fixed) == default == bio_to_spans(fixed, strict=True)
    # every strict span is also a default span (strict only drops ill-formed ones)
    assert set(bio_to_spans(tags, strict=True)) <= set(default)


@given(tag_lists)
def test_perfect_prediction_scores_one(tags):
    s = span_scores([tags], [tags])
    assert s.f1 == (1.0 if bio_to_spans(tags) else 0.0)


@pytest.mark.parametrize("call, match", [
    (lambda: bio_to_spans(["B-PER", "X-PER"]), r"tags\[1\]: expected 'O', 'B-TYPE' or 'I-TYPE', got 'X-PER'"),
    (lambda: bio_to_spans(["B-"]), r"tags\[0\]"),
    (lambda: bio_to_spans("B-PER"), "tags: expected a sequence"),
    (lambda: bio_to_spans([1]), r"tags\[0\]: expected str tags"),
    (lambda: span_scores([["O"]], [["O"], ["O"]]), "pred: expected 2 sentences"),
    (lambda: span_scores([["O"]], [["O", "O"]]), r"pred\[0\]: expected 2 tags"),
    (lambda: spans_to_bio([("A", 2, 1)], 3), "spans: expected 0 <= start < end"),
    (lambda: spans_to_bio([("A", 0, 2), ("B", 1, 3)], 3), "non-overlapping"),
    (lambda: spans_to_bio([], -1), "length"),
])
def test_bad_input_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
