"""Chapter 15's exercise checks: 15.2 against a simulation of the acceptance process (not the
closed form), 15.3 against the paged allocator; right answers pass, and each declared mistake,
written the way a student would write it, is named."""

import math
import re

import pytest

from roadmap_lib.chapters.ch15_inference_optimization.exercises import (
    BLOCKS_MISTAKES,
    MISTAKES,
    allocated_blocks,
    check_blocks_needed,
    check_expected_tokens,
    simulated_tokens_per_round,
)
from roadmap_lib.exercises import ExerciseError


def closed_form(alpha, k):
    return k + 1.0 if alpha == 1 else (1 - alpha ** (k + 1)) / (1 - alpha)


def test_simulation_matches_the_closed_form():
    for alpha, k in ((0.0, 3), (0.6, 4), (1.0, 2)):
        mean, se = simulated_tokens_per_round(alpha, k)
        assert abs(mean - closed_form(alpha, k)) <= 5 * se + 1e-12


def test_right_answer_passes_and_student_mistakes_are_named():
    check_expected_tokens(closed_form)
    for words, wrong in MISTAKES.items():
        with pytest.raises(ExerciseError, match="likely mistake"):
            check_expected_tokens(wrong)
    with pytest.raises(ExerciseError, match="simulated rounds average"):
        check_expected_tokens(lambda a, k: closed_form(a, k) * 1.05)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="alpha"):
        simulated_tokens_per_round(1.5, 3)
    with pytest.raises(ValueError, match="k and rounds"):
        simulated_tokens_per_round(0.5, 0)


STUDENT_TOKENS = {
    "the token the target model adds itself": lambda a, k: sum(a**j for j in range(1, k + 1)),
    "the sum stops one draft early": lambda a, k: (1 - a**k) / (1 - a) if a != 1 else float(k),
    "every draft is counted as accepted independently": lambda a, k: k * a + 1,
}


@pytest.mark.parametrize("words", list(STUDENT_TOKENS))
def test_each_expected_tokens_mistake_is_named(words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
        check_expected_tokens(STUDENT_TOKENS[words])
    assert any(words in d for d in MISTAKES)


def test_the_allocator_agrees_with_hand_counts():
    assert allocated_blocks([1, 16, 17], 16) == 4
    assert allocated_blocks([16, 32, 48], 16) == 6
    assert allocated_blocks([5], 4) == 2


STUDENT_BLOCKS = {
    "the division rounds down": lambda lengths, b: sum(int(n / b) for n in lengths),
    "one block too many": lambda lengths, b: sum(n // b + 1 for n in lengths),
    "the total length is divided once": lambda lengths, b: math.ceil(sum(lengths) / b),
    "one count per sequence is returned": lambda lengths, b: [math.ceil(n / b) for n in lengths],
}


def test_blocks_needed_passes_and_its_mistakes_are_named(capsys):
    check_blocks_needed(lambda lengths, b: sum(math.ceil(n / b) for n in lengths))
    assert "Correct" in capsys.readouterr().out
    for words, wrong in STUDENT_BLOCKS.items():
        with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
            check_blocks_needed(wrong)
    assert {d for d in BLOCKS_MISTAKES for w in STUDENT_BLOCKS if w in d} == set(BLOCKS_MISTAKES)
