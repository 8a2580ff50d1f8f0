"""roadmap_lib.alignment.process: outcome and process rewards for scratchpad solutions, the
learned step classifier, best-of-n and majority selection."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.alignment import aggregate_step_rewards
from roadmap_lib.alignment.process import (
    StepClassifier,
    best_of_n,
    majority_pick,
    outcome_reward,
    parse_scratchpad,
    process_reward,
    step_features,
    step_labels,
    train_step_classifier,
)
from roadmap_lib.reasoning import answer, completion, running_sums

digit_lists = st.lists(st.integers(0, 9), min_size=2, max_size=8)


def test_parse_scratchpad():
    assert parse_scratchpad("8,0,7#7.") == ([8, 0, 7], 7)
    assert parse_scratchpad("#3.") == ([], 3)
    for bad in ("8,0,7#7", "8,0,7", "8,,7#7.", "8,10,7#7.", "8,0,7#17.", "8,0,7#7..", "8;0;7#7.", "#."):
        assert parse_scratchpad(bad) is None, bad
    with pytest.raises(TypeError, match="text"):
        parse_scratchpad(7)


def test_step_labels_by_hand():
    d = [3, 5, 2, 7]  # running sums 8, 0, 7; answer 7
    assert step_labels(d, "8,0,7#7.") == [True, True, True, True]
    # a slip carried on: 9 is wrong, 1 = 9 + 2 and 8 = 1 + 7 follow from it, the answer repeats 8
    assert step_labels(d, "9,1,8#8.") == [False, True, True, True]
    # a slip not carried on (a "typo"): 9 is wrong, 0 does not follow from 9, the answer is right
    assert step_labels(d, "9,0,7#7.") == [False, False, True, True]
    # a right last step, but an answer that does not repeat it
    assert step_labels(d, "8,0,7#6.") == [True, True, True, False]
    assert step_labels(d, "8,0#7.") is None  # a step missing
    assert step_labels(d, "8,0,7") is None
    assert (outcome_reward(d, "9,0,7#7."), process_reward(d, "9,0,7#7.")) == (1.0, 0.0)
    assert (outcome_reward(d, "9,1,8#8."), process_reward(d, "9,1,8#8.")) == (0.0, 0.0)
    assert (outcome_reward(d, "garbage"), process_reward(d, "garbage")) == (0.0, 0.0)
    assert outcome_reward([1, 1, 1], "2,3#1.", modulus=2) == 1.0 and process_reward([1, 1, 1], "1,0#0.", modulus=2) == 0.0
    with pytest.raises(ValueError, match="digits"):
        step_labels([3, 15], "8#8.")
    with pytest.raises(ValueError, match="digits"):
        step_labels([3], "#3.")


@settings(max_examples=60, deadline=None)
@given(digits=digit_lists, data=st.data())
def test_process_correct_means_the_true_running_sums_and_implies_the_right_answer(digits, data):
    assert process_reward(digits, completion(digits, cot=True)) == 1.0
    steps = data.draw(st.lists(st.integers(0, 9), min_size=len(digits) - 1, max_size=len(digits) - 1))
    final = data.draw(st.integers(0, 9))
    text = ",".join(map(str, steps)) + f"#{final}."
    sound = steps == running_sums(digits) and final == answer(digits)
    assert process_reward(digits, text) == float(sound)
    assert process_reward(digits, text) <= outcome_reward(digits, text)  # the converse fails
    # the features determine the labels: a rule reading only each row reproduces them
    rows = step_features(digits, text)
    labels = step_labels(digits, text)
    assert rows.shape == (len(digits), 31) and (rows.sum(-1) == 3).all()
    for row, label in zip(rows, labels):
        prev, written = int(row[:10].argmax()), int(row[20:30].argmax())
        expected = written == prev if row[30] else written == (prev + int(row[10:20].argmax())) % 10
        assert expected == label


def test_step_features_malformed_is_none():
    assert step_features([3, 5, 2], "8,0#7") is None


def test_score_is_the_product_of_step_probabilities():
    torch.manual_seed(0)
    model = StepClassifier(hidden=8).eval()
    problems = [[3, 5, 2, 7], [1, 2], [4, 4, 4]]
    texts = ["8,0,7#7.", "3#3.", "broken"]
    scores = model.score(problems, texts)
    with torch.no_grad():
        expected = [torch.sigmoid(model(step_features(p, t))).prod().item() for p, t in zip(problems[:2], texts[:2])]
    assert scores[:2].tolist() == pytest.approx(expected, rel=1e-6)
    assert scores[2] == 0.0
    assert model.score([[1, 2]], ["junk"]).tolist() == [0.0]
    with pytest.raises(ValueError, match="texts"):
        model.score(problems, texts[:2])


def test_training_learns_the_step_rule_from_the_full_table():
    """Every (previous, digit, written) combination mod 10, labelled by the rule; the classifier
    should fit it (1-2 s of training; the first Adam in a process also pays torch.optim's import,
    several seconds on a busy machine)."""
    rows, labels = [], []
    for prev in range(10):
        for d in range(10):
            for w in range(10):
                digits = [prev, d]
                text = f"{w}#{w}."
                rows.append(step_features(digits, text)[0])
                labels.append(step_labels(digits, text)[0])
    rows, labels = torch.stack(rows), torch.tensor(labels)
    model = train_step_classifier(rows, labels, hidden=64, steps=400, lr=1e-2, seed=0)
    with torch.no_grad():
        acc = ((model(rows) > 0) == labels).float().mean().item()
    assert acc > 0.99
    untrained = StepClassifier(hidden=64)
    with torch.no_grad():
        assert ((untrained(rows) > 0) == labels).float().mean().item() < 0.95


def test_train_step_classifier_errors():
    rows = torch.zeros(4, 31)
    with pytest.raises(ValueError, match="rows"):
        train_step_classifier(torch.zeros(4, 30), torch.zeros(4))
    with pytest.raises(ValueError, match="labels"):
        train_step_classifier(rows, torch.zeros(3))
    with pytest.raises(ValueError, match="steps"):
        train_step_classifier(rows, torch.zeros(4), steps=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=6), min_size=1, max_size=5).filter(
    lambda rows: len({len(r) for r in rows}) == 1))
def test_best_of_n_is_the_first_maximum(rows):
    scores = torch.tensor(rows, dtype=torch.float32)
    picks = best_of_n(scores)
    for row, pick in zip(rows, picks.tolist()):
        assert pick == row.index(max(row))


def test_best_of_n_errors_and_dtype():
    assert best_of_n(torch.tensor([[0.1, 0.9, 0.9]])).tolist() == [1]
    assert best_of_n(torch.tensor([[0.1, 0.9, 0.9]])).dtype == torch.int64
    with pytest.raises(ValueError, match="scores"):
        best_of_n(torch.zeros(3))
    with pytest.raises(ValueError, match="scores"):
        best_of_n(torch.zeros(2, 0))


def test_majority_pick():
    assert majority_pick(["1#3.", "2#4.", "5#4.", "x"]) == 1
    assert majority_pick(["1#3.", "2#4."]) == 0  # a tie: the answer seen first
    assert majority_pick(["nothing", "here"]) == 0
    with pytest.raises(ValueError, match="texts"):
        majority_pick([])


def test_aggregate_matches_the_product_used_by_score():
    probs = torch.tensor([[0.9, 0.5, 1.0]])
    assert aggregate_step_rewards(probs, how="prod").item() == pytest.approx(0.45)
