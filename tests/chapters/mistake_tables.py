"""Shared by the chapter exercise tests that describe their students as one table:
``STUDENTS = {check: (DECLARED_MISTAKES, {words: wrong_answer, ...}), ...}``, where each ``words`` is
part of one declared mistake's plain-words name and ``wrong_answer`` is that mistake written as a
student would write it (not the declared lambda)."""

import re

import pytest

from roadmap_lib.exercises import ExerciseError


def student_cases(students: dict) -> list[tuple]:
    """``(check, words, wrong_answer)`` for every student of every check, for ``parametrize``."""
    return [(check, words, fn) for check, (_, table) in students.items() for words, fn in table.items()]


def assert_named(check, words: str, fn) -> None:
    """``check(fn)`` fails and its message names the mistake (``words``)."""
    with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
        check(fn)


def assert_every_mistake_has_a_student(students: dict) -> None:
    """Every declared mistake is matched by the words of at least one student."""
    for declared, table in students.values():
        assert {d for d in declared for w in table if w in d} == set(declared)
