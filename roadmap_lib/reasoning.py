"""A multi-step arithmetic task for reasoning experiments: text in, text out, an exact answer.

A problem is a list of digits below a ``modulus`` m; its answer is **their sum mod m** (m = 10:
the last digit of the sum; m = 2: the parity of a string of bits). ``n`` digits take ``n - 1``
additions: the number of *steps*. A model can be trained to answer

- directly:             ``3+5+2+7=#7.``
- with a scratchpad:    ``3+5+2+7=8,0,7#7.``  (the running sum mod m after each addition)

The prompt is everything up to and including ``=``; the completion ends with ``.``. The answer is
the digit between ``#`` and ``.`` (:func:`parse_answer`), so one parser scores both formats, and
:func:`majority_vote` turns several sampled completions into one answer (self-consistency,
Wang et al., 2023). A second, *tagged* format names every digit (``a3b5c2d7=`` ->
``a3:3,b5:8,c2:0,d7:7#7.``: name, digit copied, running sum) so that a step finds its operand by
content, and :func:`chain_is_consistent` checks such a chain's arithmetic (a verifier). Everything here is pure Python over strings, plus :func:`encode_examples`,
which turns examples into the ``(inputs, targets)`` tensors a language model trains on.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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


# --- the tagged format: every digit has a name, so a step can find its operand by content ---------

#: Names of the digits in the tagged format (so at most 8 digits).
TAGS = "abcdefgh"
#: Every character the tagged format writes.
TAGGED_ALPHABET = ALPHABET + ":" + TAGS


def _check_tagged(digits: Sequence[int]) -> list[int]:
    digits = _check_digits(digits)
    if len(digits) > len(TAGS):
        raise ValueError(f"digits: the tagged format names at most {len(TAGS)} digits, got {len(digits)}")
    return digits


def tagged_prompt(digits: Sequence[int]) -> str:
    """``"a3b5c2d7="``: each digit after its name."""
    return "".join(t + str(d) for t, d in zip(TAGS, _check_tagged(digits))) + "="


def tagged_completion(digits: Sequence[int], cot: bool, modulus: int = 10) -> str:
    """``"#7."`` (direct) or ``"a3:3,b5:8,c2:0,d7:7#7."`` (scratchpad): for each digit its name,
    the digit copied from the prompt, ``:`` and the running sum mod 10 so far. Each step is one
    look-up (find the named digit) and one addition of two digits, whatever the problem length."""
    digits = _check_tagged(digits)
    _check_digits(digits, modulus)
    steps, total = [], 0
    for t, d in zip(TAGS, digits):
        total = (total + d) % modulus
        steps.append(f"{t}{d}:{total}")
    return (",".join(steps) if cot else "") + f"#{answer(digits, modulus)}{END}"


def parse_steps(text: str) -> list[tuple[str, int, int]] | None:
    """The ``(name, digit, running_sum)`` steps of a tagged scratchpad (the text before ``#``), or
    None when it is not a well-formed list of ``name digit : digit`` entries."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    body = text.partition("#")[0]
    out = []
    for entry in body.split(","):
        if len(entry) != 4 or entry[0] not in TAGS or entry[2] != ":" or not (
                entry[1].isdigit() and entry[3].isdigit()):
            return None
        out.append((entry[0], int(entry[1]), int(entry[3])))
    return out


def chain_is_consistent(text: str, modulus: int = 10) -> bool:
    """A verifier that checks the arithmetic a tagged scratchpad shows, and nothing else: every
    running sum is the previous one plus the step's digit (mod 10), starting from 0, and the
    answer after ``#`` is the last running sum. It does *not* look at the prompt, so a digit copied
    wrongly from the prompt passes as long as the sums built on it are right."""
    steps, ans = parse_steps(text), parse_answer(text)
    if steps is None or ans is None:
        return False
    return ans == _last_sum(steps, modulus)


def _last_sum(steps: list[tuple[str, int, int]], modulus: int) -> int | None:
    """The last running sum when every step's sum follows from the one before (from 0), else None."""
    total = 0
    for _, d, s in steps:
        total = (total + d) % modulus
        if s != total:
            return None
    return total


__all__ = ["ALPHABET", "END", "TAGGED_ALPHABET", "TAGS", "answer", "chain_is_consistent", "completion",
           "encode_examples", "examples", "majority_vote", "make_problem", "parse_answer", "parse_steps",
           "prompt", "running_sums", "tagged_completion", "tagged_prompt"]


# --- tree search over partial solutions (tree of thoughts, breadth-first) -------------------------


def chain_prefix_is_consistent(text: str, modulus: int = 10) -> bool:
    """:func:`chain_is_consistent` for a chain still being written: the complete steps of a tagged
    scratchpad (``"a3:3,b5:8,"``: every step ends with ``,``; an empty text has none) follow the
    arithmetic, and a text that has reached ``#`` is checked whole. The step verifier of a search
    over partial chains: it prunes a chain at its first wrong sum."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    if "#" in text:
        return chain_is_consistent(text, modulus)
    if not text:
        return True
    if not text.endswith(","):
        return False
    steps = parse_steps(text[:-1])
    return steps is not None and _last_sum(steps, modulus) is not None


@dataclass
class SearchResult:
    """What :func:`tree_search` found: ``best`` (the finished state with the highest value, None if
    none), every ``finished`` state as ``(value, state)`` in the order found, the number of
    ``expansions`` (states handed to ``propose``), and the ``frontiers`` (states kept at each depth)."""

    best: Any
    finished: list = field(default_factory=list)
    expansions: int = 0
    frontiers: list = field(default_factory=list)


def tree_search(root, propose, value, is_finished, *, beam_width: int, max_depth: int,
                stop_at_first: bool = False, dedupe: bool = True) -> SearchResult:
    """Breadth-first search with a beam over partial solutions: the BFS of tree of thoughts
    (Yao et al., 2023), for any states.

    At each depth, ``propose(frontier) -> [children of state 0, children of state 1, ...]`` extends
    every state of the frontier (one batched call: a language model samples a next step for each);
    ``value(child) -> float | None`` scores each child, ``None`` prunes it (a verifier rejects the
    step); finished children (``is_finished``) are set aside, and the ``beam_width`` best unfinished
    ones, by value (a tie goes to the one proposed first), are the next frontier. Stops after
    ``max_depth`` depths, when the frontier is empty, or, with ``stop_at_first``, at the first depth
    that finished something. ``dedupe`` drops a child equal to one already seen at that depth
    (states must then be hashable). ``beam_width=1`` is greedy search on ``value``; a beam wider
    than any depth's children is exhaustive search."""
    for name, v in (("beam_width", beam_width), ("max_depth", max_depth)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    frontier, finished, frontiers, expansions = [root], [], [], 0
    for _ in range(max_depth):
        proposals = propose(list(frontier))
        if len(proposals) != len(frontier):
            raise ValueError(f"propose: expected one list of children per state ({len(frontier)}), "
                             f"got {len(proposals)}")
        expansions += len(frontier)
        children, seen = [], set()
        for kids in proposals:
            for c in kids:
                if dedupe:
                    if c in seen:
                        continue
                    seen.add(c)
                v = value(c)
                if v is None:
                    continue
                if is_finished(c):
                    finished.append((v, c))
                else:
                    children.append((v, len(children), c))
        children.sort(key=lambda t: (-t[0], t[1]))
        frontier = [c for _, _, c in children[:beam_width]]
        frontiers.append(frontier)
        if not frontier or (stop_at_first and finished):
            break
    best = None
    if finished:
        top = max(v for v, _ in finished)
        best = next(c for v, c in finished if v == top)
    return SearchResult(best, finished, expansions, frontiers)


__all__ += ["SearchResult", "chain_prefix_is_consistent", "tree_search"]
