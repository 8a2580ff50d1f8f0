"""The tagged format of roadmap_lib.reasoning and its arithmetic-only verifier."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib import reasoning as R


def test_hand_worked_tagged_example():
    d = [3, 5, 2, 7]  # 3, 3+5=8, 8+2=10 -> 0, 0+7=7
    assert R.tagged_prompt(d) == "a3b5c2d7="
    assert R.tagged_completion(d, cot=False) == "#7."
    assert R.tagged_completion(d, cot=True) == "a3:3,b5:8,c2:0,d7:7#7."
    assert R.parse_steps("a3:3,b5:8,c2:0,d7:7#7.") == [("a", 3, 3), ("b", 5, 8), ("c", 2, 0), ("d", 7, 7)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=2, max_size=8))
def test_every_true_chain_passes_the_verifier_and_parses_to_the_answer(digits):
    c = R.tagged_completion(digits, cot=True)
    assert R.chain_is_consistent(c)
    assert R.parse_answer(c) == R.parse_answer(R.tagged_completion(digits, cot=False)) == sum(digits) % 10
    assert [s for _, _, s in R.parse_steps(c)][1:] == R.running_sums(digits)
    assert set(R.tagged_prompt(digits) + c) <= set(R.TAGGED_ALPHABET)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=2, max_size=8), st.data())
def test_a_wrong_sum_or_answer_fails_the_verifier_but_a_wrong_copy_does_not(digits, data):
    c = R.tagged_completion(digits, cot=True)
    i = data.draw(st.integers(0, len(digits) - 1))
    pos = 5 * i + 3  # the running sum of step i
    bad = c[:pos] + str((int(c[pos]) + 1) % 10) + c[pos + 1:]
    assert not R.chain_is_consistent(bad)
    assert not R.chain_is_consistent(c[:-2] + str((int(c[-2]) + 1) % 10) + ".")
    # copy a wrong digit, and carry the wrong sums on consistently: the verifier cannot tell
    wrong = list(digits)
    wrong[i] = (wrong[i] + 1) % 10
    assert R.chain_is_consistent(R.tagged_completion(wrong, cot=True))


@pytest.mark.parametrize("text", ["", "#7.", "a3:3#", "a3:3,b5:8#x.", "a33,b5:8#8.", "z3:3#3.", "a3:3,#3."])
def test_malformed_chains_are_rejected(text):
    assert not R.chain_is_consistent(text)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="digits"):
        R.tagged_prompt(list(range(9)))
    with pytest.raises(ValueError, match="digits"):
        R.tagged_completion([1], cot=True)
    with pytest.raises(TypeError, match="text"):
        R.parse_steps(3)
