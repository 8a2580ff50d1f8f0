"""The multi-step arithmetic task of roadmap_lib.reasoning: hand cases, parsing, voting, encoding."""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib import reasoning as R

STOI = {c: i for i, c in enumerate(R.ALPHABET)}


def test_hand_worked_example():
    d = [3, 5, 2, 7]  # 3+5=8, 8+2=10 -> 0, 0+7=7
    assert R.prompt(d) == "3+5+2+7="
    assert R.running_sums(d) == [8, 0, 7]
    assert R.answer(d) == 7
    assert R.completion(d, cot=False) == "#7."
    assert R.completion(d, cot=True) == "8,0,7#7."


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=2, max_size=12), st.booleans())
def test_completion_parses_to_the_answer_and_the_scratchpad_ends_on_it(digits, cot):
    assert R.parse_answer(R.completion(digits, cot)) == sum(digits) % 10
    assert R.running_sums(digits)[-1] == R.answer(digits)
    assert len(R.running_sums(digits)) == len(digits) - 1
    assert set(R.prompt(digits) + R.completion(digits, cot)) <= set(R.ALPHABET)


@pytest.mark.parametrize("text, want", [
    ("#7.", 7), ("8,0,7#7.", 7), ("8,0,7#7...", 7), ("#7", None), ("7.", None), ("#.", None),
    ("#12.", None), ("#x.", None), ("", None), ("3#4.#5.", 4),
])
def test_parse_answer(text, want):
    assert R.parse_answer(text) == want


def test_majority_vote_ignores_none_and_breaks_ties_by_first_seen():
    assert R.majority_vote([3, None, 5, 5, None, None]) == 5
    assert R.majority_vote([4, 2, 2, 4]) == 4
    assert R.majority_vote([None, None]) is None
    assert R.majority_vote([]) is None


def test_examples_are_seeded_and_respect_lengths():
    a = R.examples(random.Random(1), 50, (2, 4), cot=True)
    assert a == R.examples(random.Random(1), 50, (2, 4), cot=True)
    assert {p.count("+") + 1 for p, _ in a} == {2, 4}


def test_encode_examples_trains_on_the_completion_only():
    pairs = [("3+5=", "8#8."), ("1+1=", "#2.")]
    x, y = R.encode_examples(pairs, STOI, 10)
    assert x.shape == y.shape == (2, 10)
    row = "3+5=8#8."
    assert x[0, :7].tolist() == [STOI[c] for c in row[:-1]]
    want = torch.full((10,), -100)
    want[3:7] = torch.tensor([STOI[c] for c in "8#8."])  # the '=' position predicts the first '8'
    assert torch.equal(y[0], want)
    assert (x[1, 6:] == STOI["."]).all() and (y[1, 6:] == -100).all()


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="digits"):
        R.answer([3])
    with pytest.raises(ValueError, match="digits"):
        R.prompt([3, 10])
    with pytest.raises(ValueError, match="n_digits"):
        R.make_problem(random.Random(0), 1)
    with pytest.raises(TypeError, match="text"):
        R.parse_answer(7)
    with pytest.raises(ValueError, match="length"):
        R.encode_examples([("3+5=", "8#8.")], STOI, 4)
    with pytest.raises(ValueError, match="pairs"):
        R.encode_examples([], STOI, 4)
    with pytest.raises(ValueError, match="n_digits"):
        R.examples(random.Random(0), 3, (), cot=False)
