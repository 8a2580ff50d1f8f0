"""Chapter 01's exercise checks: right answers pass, and each declared mistake, written the way a
student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import re

import pytest
import torch

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
