"""A multi-step arithmetic task for reasoning experiments: text in, text out, an exact answer.

A problem is a list of digits below a ``modulus`` m; its answer is **their sum mod m** (m = 10:
the last digit of the sum; m = 2: the parity of a string of bits). ``n`` digits take ``n - 1``
additions: the number of *steps*. A model can be trained to answer

- directly:             ``3+5+2+7=#7.``
- with a scratchpad:    ``3+5+2+7=8,0,7#7.``  (the running sum mod m after each addition)

The prompt is everything up to and including ``=``; the completion ends with ``.``. The answer is
the digit between ``#`` and ``.`` (:func:`parse_answer`), so one parser scores both formats, and
:func:`majority_vote` turns several sampled completions into one answer (self-consistency,
Wang et al., 2023). Everything here is pure Python over strings, plus :func:`encode_examples`,
which turns examples into the ``(inputs, targets)`` tensors a language model trains on.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import torch

#: Every character the task writes; ``.`` ends a completion and pads batches.
ALPHABET = "#+,.0123456789="
END = "."


def _check_modulus(modulus: int) -> int:
    if not isinstance(modulus, int) or isinstance(modulus, bool) or not 2 <= modulus <= 10:
        raise ValueError(f"modulus: expected an int in 2..10 (one character per digit), got {modulus!r}")
    return modulus


def _check_digits(digits: Sequence[int], modulus: int = 10) -> list[int]:
    digits = list(digits)
    if len(digits) < 2:
        raise ValueError(f"digits: expected at least 2 digits, got {digits!r}")
    if any(not isinstance(d, int) or isinstance(d, bool) or not 0 <= d < _check_modulus(modulus)
           for d in digits):
        raise ValueError(f"digits: expected ints in 0..{modulus - 1}, got {digits!r}")
    return digits


def make_problem(rng: random.Random, n_digits: int, modulus: int = 10) -> list[int]:
    """``n_digits`` digits drawn uniformly from 0..modulus-1 with ``rng`` (a ``random.Random``)."""
    if not isinstance(n_digits, int) or n_digits < 2:
        raise ValueError(f"n_digits: expected an int >= 2, got {n_digits!r}")
    return [rng.randrange(_check_modulus(modulus)) for _ in range(n_digits)]


def answer(digits: Sequence[int], modulus: int = 10) -> int:
    """The sum of ``digits`` mod ``modulus`` (its last digit for 10, its parity for 2)."""
    return sum(_check_digits(digits, modulus)) % modulus


def running_sums(digits: Sequence[int], modulus: int = 10) -> list[int]:
    """The running sum mod ``modulus`` after each addition: ``n - 1`` values, the last is
    :func:`answer`."""
    digits = _check_digits(digits, modulus)
    out, total = [], digits[0]
    for d in digits[1:]:
        total = (total + d) % modulus
        out.append(total)
    return out


def prompt(digits: Sequence[int]) -> str:
    """``"3+5+2+7="``."""
    return "+".join(str(d) for d in _check_digits(digits)) + "="


def completion(digits: Sequence[int], cot: bool, modulus: int = 10) -> str:
    """The target after the prompt: ``"#7."`` (direct) or ``"8,0,7#7."`` (scratchpad)."""
    steps = ",".join(str(s) for s in running_sums(digits, modulus)) if cot else ""
    return f"{steps}#{answer(digits, modulus)}{END}"


def parse_answer(text: str) -> int | None:
    """The digit between the first ``#`` and the ``.`` after it, or None if the text has no
    well-formed answer (no ``#``, no ``.``, or anything but one digit between them)."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    _, sep, tail = text.partition("#")
    if not sep:
        return None
    body, sep, _ = tail.partition(END)
    if not sep or len(body) != 1 or not body.isdigit():
        return None
    return int(body)


def majority_vote(answers: Sequence[int | None]) -> int | None:
    """The most frequent non-None answer; a tie goes to the one seen first; None if there is none."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def examples(rng: random.Random, n: int, n_digits: Sequence[int], cot: bool,
             modulus: int = 10) -> list[tuple[str, str]]:
    """``n`` ``(prompt, completion)`` pairs, each with a length drawn uniformly from ``n_digits``."""
    if n < 0:
        raise ValueError(f"n: expected an int >= 0, got {n!r}")
    if not n_digits:
        raise ValueError("n_digits: expected at least one problem length, got none")
    out = []
    for _ in range(n):
        digits = make_problem(rng, rng.choice(list(n_digits)), modulus)
        out.append((prompt(digits), completion(digits, cot, modulus)))
    return out


def encode_examples(pairs: Sequence[tuple[str, str]], stoi: dict[str, int],
                    length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)`` of shape (len(pairs), length) for next-token training on the
    completions only: row ``i`` is ``prompt + completion`` padded with ``.``, shifted by one, and
    targets are -100 on the prompt (nothing to learn there) and on the padding."""
    if not pairs:
        raise ValueError("pairs: expected at least one (prompt, completion) pair, got none")
    pad = stoi[END]
    inputs = torch.full((len(pairs), length), pad, dtype=torch.long)
    targets = torch.full((len(pairs), length), -100, dtype=torch.long)
    for i, (p, c) in enumerate(pairs):
        ids = [stoi[ch] for ch in p + c]
        if len(ids) - 1 > length:
            raise ValueError(f"length: example {p + c!r} needs {len(ids) - 1} positions, got length={length}")
        inputs[i, :len(ids) - 1] = torch.tensor(ids[:-1])
        targets[i, len(p) - 1:len(ids) - 1] = torch.tensor(ids[len(p):])
    return inputs, targets


__all__ = ["ALPHABET", "END", "answer", "completion", "encode_examples", "examples", "majority_vote",
           "make_problem", "parse_answer", "prompt", "running_sums"]
