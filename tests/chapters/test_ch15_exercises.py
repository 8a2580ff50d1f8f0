"""Exercise 15.2's check: a simulation of the acceptance process, not the closed form."""

import pytest

from roadmap_lib.chapters.ch15_inference_optimization.exercises import (
    MISTAKES,
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
