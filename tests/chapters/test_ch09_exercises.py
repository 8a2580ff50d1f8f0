"""Chapter 09's exercise checks: the right answers pass; each declared mistake, written the way a
student would write it (independently of the module's mistake functions), is named."""

from __future__ import annotations

import math
import re

import pytest

from roadmap_lib.chapters.ch09_scaling_laws_emergence import exercises as ex
from roadmap_lib.exercises import ExerciseError


def step_flops(n_layers, d_model, vocab_size, batch, seq, *, factor=3, head=True, attention=True, causal=False):
    tokens = batch * seq
    qkv_out_mlp = 2 * tokens * (3 * d_model**2 + d_model**2 + 2 * 4 * d_model**2)
    scores_and_mix = 2 * (2 * batch * seq * seq * d_model) * (0.5 if causal else 1.0) if attention else 0
    forward = n_layers * (qkv_out_mlp + scores_and_mix) + (2 * tokens * d_model * vocab_size if head else 0)
    return factor * forward


def compute_optimal(E, A, B, alpha, beta, C, *, swap=False, use_c=False, invert=False):
    budget = C if use_c else C / 6
    a, b = (beta, alpha) if swap else (alpha, beta)
    g = (a * A / (b * B)) ** (1 / (a + b))
    if invert:
        g = 1 / g
    n = g * math.pow(budget, b / (a + b))
    return n, budget / n


def test_right_answers_pass(capsys):
    ex.check_step_flops(step_flops)
    ex.check_compute_optimal(compute_optimal)
    assert capsys.readouterr().out.count("Correct") == 2


STUDENT = {
    (ex.check_step_flops, "only the forward pass is counted"): lambda *a: step_flops(*a, factor=1),
    (ex.check_step_flops, "counted once more instead of twice"): lambda *a: step_flops(*a, factor=2),
    (ex.check_step_flops, "the lm_head"): lambda *a: step_flops(*a, head=False),
    (ex.check_step_flops, "the attention scores and weighted sum"): lambda *a: step_flops(*a, attention=False),
    (ex.check_step_flops, "attention is halved as for a causal mask"): lambda *a: step_flops(*a, causal=True),
    (ex.check_compute_optimal, "the exponents are swapped"): lambda *a: compute_optimal(*a, swap=True),
    (ex.check_compute_optimal, "C is used where C/6 belongs"): lambda *a: compute_optimal(*a, use_c=True),
    (ex.check_compute_optimal, "G is inverted"): lambda *a: compute_optimal(*a, invert=True),
}


@pytest.mark.parametrize("check, words", list(STUDENT), ids=lambda x: getattr(x, "__name__", x))
def test_each_mistake_is_named(check, words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
        check(STUDENT[check, words])


@pytest.mark.parametrize("table", [ex.FLOP_MISTAKES, ex.OPTIMAL_MISTAKES])
def test_every_declared_mistake_has_a_student_version(table):
    assert {d for d in table for _, words in STUDENT if words in d} == set(table)
