"""Chapter 19, section 8: the scripted solver and the best-of-n selection experiment."""

import random

import matplotlib
import pytest

from roadmap_lib.alignment.process import outcome_reward, process_reward, step_labels
from roadmap_lib.chapters.ch19_alignment.plots import plot_selection
from roadmap_lib.chapters.ch19_alignment.process_rewards import (
    SELECTORS,
    demo_solutions,
    run_selection,
    sample_solution,
    selection_stats,
    held_out_candidates,
)
from roadmap_lib.reasoning import completion

matplotlib.use("Agg")
DIGITS = [3, 5, 2, 7, 9, 1]


def test_solver_without_slips_is_always_right():
    rng = random.Random(0)
    for _ in range(20):
        assert sample_solution(DIGITS, rng, slip=0.0) == completion(DIGITS, cot=True)


def test_solver_slips_carried_on_or_not():
    rng = random.Random(0)
    carried = sample_solution(DIGITS, rng, slip=1.0, typo=0.0)
    # every step wrong relative to the line before, the answer repeats the last (wrong) step
    assert step_labels(DIGITS, carried) == [False] * 5 + [True]
    typo = sample_solution(DIGITS, rng, slip=1.0, typo=1.0)
    assert (outcome_reward(DIGITS, typo), process_reward(DIGITS, typo)) == (1.0, 0.0)
    with pytest.raises(ValueError, match="slip"):
        sample_solution(DIGITS, rng, slip=1.5)


def test_candidates_do_not_depend_on_the_number_of_problems():
    few, many = held_out_candidates(1, 3, 4), held_out_candidates(1, 10, 4)
    assert few[0] == many[0][:3] and few[1] == many[1][:3]
    demo = demo_solutions(seed=1, k=3, n=4)
    assert demo == [(p, c[0]) for p, c in zip(few[0], few[1])]


def test_run_selection_small():
    runs = [run_selection(s, n_problems=30, ns=(1, 4), train_solutions=40, prm_steps=30) for s in range(2)]
    for r in runs:
        assert r["ns"] == [1, 4] and 0 <= r["prm_step_accuracy"] <= 1
        firsts = {(r["curves"][s]["answer_accuracy"][0], r["curves"][s]["path_correct"][0]) for s in SELECTORS}
        assert len(firsts) == 1  # with one candidate every selector keeps it
        assert firsts == {(r["single"]["answer_right"], r["single"]["path_right"])}
        for i in range(2):  # the oracles are the best on what they check
            assert r["curves"]["outcome"]["answer_accuracy"][i] == max(
                r["curves"][s]["answer_accuracy"][i] for s in SELECTORS)
            assert r["curves"]["process"]["path_correct"][i] == max(r["curves"][s]["path_correct"][i] for s in SELECTORS)
    mean, std = selection_stats(runs, "outcome", "answer_accuracy")
    assert mean.shape == std.shape == (2,)
    axes = plot_selection(runs)
    assert len(axes) == 2 and axes[0].get_xlabel() == "n candidates per problem"
