"""Chapter 01's exercise checks: right answers pass, and each declared mistake, written the way a
student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import re

import pytest
import torch
from mistake_tables import assert_every_mistake_has_a_student, assert_named

from roadmap_lib.chapters.ch01_why_transformers import exercises as ex
from roadmap_lib.exercises import ExerciseError


def _named(check, fn, words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
        check(fn)


def test_right_answers_pass(capsys):
    ex.check_recall_target(lambda s, d: s.gather(1, (s.shape[1] - 1 - d)[:, None]).squeeze(1))
    ex.check_memory_limited_accuracy(
        lambda ds, m, v: torch.tensor([1.0 if k < m else 1 / v for k in ds]))
    ex.check_chinchilla_optimal(lambda c: ((c / 120) ** 0.5, 20 * (c / 120) ** 0.5))
    out = capsys.readouterr().out
    assert out.count("Correct") == 4 and "GPT-3's budget gives 51" in out


STUDENT_RECALL = {
    "counted forward from the first position": lambda s, d: s[torch.arange(len(s)), d],
    "one step too far back": lambda s, d: s[torch.arange(len(s)), -d],
    "one past the end for distance 0": lambda s, d: s[torch.arange(len(s)), s.size(1) - d],
    "only the columns are indexed": lambda s, d: s[:, -1 - d],
}


@pytest.mark.parametrize("words", list(STUDENT_RECALL))
def test_each_recall_mistake_is_named(words):
    _named(ex.check_recall_target, STUDENT_RECALL[words], words)


def test_every_declared_mistake_has_a_student_version():
    for declared, students in [(ex.RECALL_TARGET_MISTAKES, STUDENT_RECALL), (ex.MEMORY_MISTAKES, STUDENT_MEMORY),
                               (ex.CHINCHILLA_MISTAKES, STUDENT_CHINCHILLA)]:
        assert {d for d in declared for w in students if w in d} == set(declared)


STUDENT_MEMORY = {
    "`<=` instead of `<`": lambda ds, m, v: torch.tensor([1.0 if k <= m else 1 / v for k in ds]),
    "anything older scores 0": lambda ds, m, v: (torch.tensor(ds) < m).float(),
    "the comparison is reversed": lambda ds, m, v: torch.tensor([1 / v if k < m else 1.0 for k in ds]),
    "the chance level is 1/memory": lambda ds, m, v: torch.tensor([1.0 if k < m else 1 / m for k in ds]),
}


@pytest.mark.parametrize("words", list(STUDENT_MEMORY))
def test_each_memory_mistake_is_named(words):
    _named(ex.check_memory_limited_accuracy, STUDENT_MEMORY[words], words)


def test_the_memory_cases_agree_with_a_simulated_memory():
    """The exact values the check uses are what the described memory does, simulated."""
    g = torch.Generator().manual_seed(0)
    vocab, memory, trials = 5, 3, 20_000
    for k in range(6):
        truth = torch.randint(vocab, (trials,), generator=g)
        guess = truth if k < memory else torch.randint(vocab, (trials,), generator=g)
        expected = 1.0 if k < memory else 1 / vocab
        assert abs((guess == truth).float().mean().item() - expected) < 0.02


STUDENT_CHINCHILLA = {
    "D = 20N is left out": lambda c: ((c / 6) ** 0.5,) * 2,
    "the factor 6 is left out": lambda c: ((c / 20) ** 0.5, 20 * (c / 20) ** 0.5),
    "N and D are swapped": lambda c: (20 * (c / 120) ** 0.5, (c / 120) ** 0.5),
    "the square root is missing": lambda c: (c / 120, c / 6),
    "(or D = N/20 was used)": lambda c: ((c * 20 / 6) ** 0.5, (c * 20 / 6) ** 0.5 / 20),
}


@pytest.mark.parametrize("words", list(STUDENT_CHINCHILLA))
def test_each_chinchilla_mistake_is_named(words):
    _named(ex.check_chinchilla_optimal, STUDENT_CHINCHILLA[words], words)


def test_unwritten_and_unrecognised_answers_get_the_general_messages():
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not written yet"):
        ex.check_recall_target(stub)
    with pytest.raises(ExerciseError, match=r"chinchilla_optimal.*: N: .*differ") as info:
        ex.check_chinchilla_optimal(lambda c: ((c / 100) ** 0.5, 20 * (c / 120) ** 0.5))
    assert "likely mistake" not in str(info.value)


# ---- exercise 01.4: predict, then measure ---------------------------------------------------------


RIGHT_CARRY = {"lstm": {32: 256, 256: 256}, "attention": {32: 8192, 256: 65536}}

STUDENT_CARRY = {  # predictions a student might write, each making one declared mistake
    "a cell state c as well as its hidden state h": {"lstm": {32: 128, 256: 128},
                                                      "attention": {32: 8192, 256: 65536}},
    "the same size at every length": {"lstm": {32: 256, 256: 2048}, "attention": {32: 8192, 256: 65536}},
    "grows with the length": {"lstm": {32: 256, 256: 256}, "attention": {32: 8192, 256: 8192}},
    "in every block (not one block)": {"lstm": {32: 256, 256: 256}, "attention": {32: 4096, 256: 32768}},
    "not bytes": {"lstm": {32: 1024, 256: 1024}, "attention": {32: 32768, 256: 262144}},
}


def test_the_right_carry_prediction_passes(capsys):
    ex.check_carried_numbers(RIGHT_CARRY)
    assert "LSTM carries 256 numbers" in capsys.readouterr().out


@pytest.mark.parametrize("words", list(STUDENT_CARRY))
def test_each_carry_mistake_is_named(words):
    assert_named(ex.check_carried_numbers, words, STUDENT_CARRY[words])  # a prediction, not a function


def test_every_declared_carry_mistake_has_a_student_version():
    assert_every_mistake_has_a_student({"carry": (ex.CARRY_MISTAKES, STUDENT_CARRY)})


def test_a_prediction_of_the_wrong_shape_or_a_near_miss_is_refused():
    with pytest.raises(ExerciseError, match="should be"):
        ex.check_carried_numbers({"lstm": 256, "attention": 8192})
    near = {"lstm": {32: 256, 256: 256}, "attention": {32: 8000, 256: 65536}}
    with pytest.raises(ExerciseError, match="length 32") as info:
        ex.check_carried_numbers(near)
    assert "likely mistake" not in str(info.value)


def test_the_measurement_counts_what_the_models_hold():
    """Hand-derived: the LSTM's (h, c) are 2 x layers x width at any length; attention reads a key and
    a value of the width per position and block."""
    for cfg in (ex.RecallConfig(seq_len=10, d_model=8, n_layers=3, n_heads=2), ex.RecallConfig(seq_len=5)):
        got = ex.measure_carried_numbers(cfg)
        assert got == {"lstm": 2 * cfg.n_layers * cfg.d_model,
                       "attention": 2 * cfg.n_layers * cfg.seq_len * cfg.d_model}
