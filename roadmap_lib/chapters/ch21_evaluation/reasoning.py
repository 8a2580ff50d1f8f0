"""Grading reasoning paths, not only final answers, on synthetic arithmetic traces.

A problem is three numbers ``(a, b, c)`` and the question "(a + b) * c = ?". A trace is text:

    step 1: 3 + 4 = 7
    step 2: 7 * 5 = 35
    answer: 35

:func:`grade_trace` checks the final answer *and* the path: each step's arithmetic, and that each
step works on the right operands (step 1 on a and b, step 2 on step 1's result and c) and the
answer is step 2's result. The solvers below are *scripted*: small programs that make stated kinds
of mistakes at stated rates, standing in for models so that the grader can be tested on known
ground truth. None of them is a trained model.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

Problem = tuple[int, int, int]
_STEP = re.compile(r"^step (\d+): (-?\d+) ([+*]) (-?\d+) = (-?\d+)$")
_ANSWER = re.compile(r"^answer: (-?\d+)$")


def problems(n: int, seed: int) -> list[Problem]:
    """``n`` seeded problems with a, b, c in 2..20."""
    rng = random.Random(seed)
    return [(rng.randint(2, 20), rng.randint(2, 20), rng.randint(2, 20)) for _ in range(n)]


def solution(p: Problem) -> int:
    a, b, c = p
    return (a + b) * c


def format_trace(steps: list[tuple[int, str, int, int]], answer: int) -> str:
    """Text of a trace from ``(x, op, y, result)`` steps and the final answer."""
    lines = [f"step {k}: {x} {op} {y} = {r}" for k, (x, op, y, r) in enumerate(steps, 1)]
    return "\n".join(lines + [f"answer: {answer}"])


def grade_trace(p: Problem, trace: str) -> dict[str, bool]:
    """``{"answer_correct", "path_valid", "parsed"}`` of a trace for problem ``p``.

    ``path_valid``: the trace parses, has exactly two steps, step 1 is ``a + b`` (either order),
    step 2 multiplies step 1's result by ``c`` (either order), every step's arithmetic is right, and
    the answer is step 2's result. A valid path implies a correct answer; the converse is what
    final-answer grading assumes and what this chapter measures.
    """
    a, b, c = p
    lines = [line.strip() for line in trace.strip().split("\n") if line.strip()]
    answer_match = _ANSWER.match(lines[-1]) if lines else None
    answer = int(answer_match.group(1)) if answer_match else None
    steps = [_STEP.match(line) for line in lines[:-1]]
    parsed = answer_match is not None and all(steps) and len(steps) == 2
    ok = parsed
    if parsed:
        (k1, x1, op1, y1, r1), (k2, x2, op2, y2, r2) = ((int(m.group(1)), int(m.group(2)), m.group(3),
                                                         int(m.group(4)), int(m.group(5))) for m in steps)
        ok = (k1, k2) == (1, 2) and op1 == "+" and sorted((x1, y1)) == sorted((a, b)) and r1 == x1 + y1
        ok = ok and op2 == "*" and sorted((x2, y2)) == sorted((r1, c)) and r2 == x2 * y2 and answer == r2
    return {"answer_correct": answer == solution(p), "path_valid": bool(ok), "parsed": parsed}


def careful(p: Problem, rng: random.Random) -> str:
    """Always right."""
    a, b, c = p
    return format_trace([(a, "+", b, a + b), (a + b, "*", c, (a + b) * c)], (a + b) * c)


def slipper(p: Problem, rng: random.Random, rate: float = 0.2) -> str:
    """Each step's result is off by 1-3 with probability ``rate``; later steps use the wrong value."""
    a, b, c = p
    s = a + b + (rng.choice([-3, -2, -1, 1, 2, 3]) if rng.random() < rate else 0)
    t = s * c + (rng.choice([-3, -2, -1, 1, 2, 3]) if rng.random() < rate else 0)
    return format_trace([(a, "+", b, s), (s, "*", c, t)], t)


def memoriser(p: Problem, rng: random.Random, recall: float = 0.9, rate: float = 0.4) -> str:
    """Writes the right answer with probability ``recall`` (as if it had seen the problem in
    training) whatever its steps say; its steps slip like :func:`slipper` at ``rate``. A right
    answer can then follow a wrong path."""
    a, b, c = p
    s = a + b + (rng.choice([-3, -2, -1, 1, 2, 3]) if rng.random() < rate else 0)
    t = s * c
    answer = solution(p) if rng.random() < recall else t
    return format_trace([(a, "+", b, s), (s, "*", c, t)], answer)


def compensator(p: Problem, rng: random.Random, rate: float = 0.3) -> str:
    """With probability ``rate`` uses the wrong operand order of operations, a + (b * c), then
    "corrects" the total to the right answer in a last unjustified step: right answer, wrong path."""
    a, b, c = p
    if rng.random() < rate:
        return format_trace([(b, "*", c, b * c), (a, "+", b * c, a + b * c)], solution(p))
    return careful(p, rng)


SOLVERS: dict[str, Callable[[Problem, random.Random], str]] = {
    "careful": careful, "slipper": slipper, "memoriser": memoriser, "compensator": compensator}


def grade_solver(solver: Callable[[Problem, random.Random], str], n: int, seed: int) -> dict[str, float]:
    """Shares over ``n`` problems (seeded): final answer right, path valid, and right answer with
    an invalid path (what final-answer grading counts as success but should not)."""
    rng = random.Random(seed + 10_000)
    grades = [grade_trace(p, solver(p, rng)) for p in problems(n, seed)]
    right = sum(g["answer_correct"] for g in grades) / n
    valid = sum(g["path_valid"] for g in grades) / n
    lucky = sum(g["answer_correct"] and not g["path_valid"] for g in grades) / n
    return {"answer_accuracy": right, "path_accuracy": valid, "right_answer_wrong_path": lucky}


__all__ = ["SOLVERS", "careful", "compensator", "format_trace", "grade_solver", "grade_trace", "memoriser",
           "problems", "slipper", "solution"]
