"""Checks for chapter 15's exercises that must not spell out the answer they check.

Exercise 15.2 asks for the expected number of tokens a speculative round yields. Its check does not
compare with the closed form (that would print the answer in the notebook): it simulates the
acceptance process the exercise describes and compares with the simulated mean, within a few of its
standard errors. Exercise 15.3's check replays section 2's workloads on a paged cache and compares
with the number of blocks its allocator really handed out. Both name the usual mistakes
("likely mistake: ..."). Exercise 15.1 is a "predict, then measure" exercise: its check compares a
prediction with a measurement and needs no declared mistakes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from roadmap_lib.exercises import ExerciseError, _ok, check_equal
from roadmap_lib.inference.batching import mixed_workload
from roadmap_lib.inference.paged import PagedKVCache, waste_report


def simulated_tokens_per_round(alpha: float, k: int, rounds: int = 200_000, seed: int = 0) -> tuple[float, float]:
    """Mean and standard error of ``1 + (number of leading accepted drafts)`` over ``rounds``
    simulated rounds, each of ``k`` drafts accepted independently with probability ``alpha``."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a probability in [0, 1], got {alpha}")
    if k < 1 or rounds < 2:
        raise ValueError(f"k and rounds: expected k >= 1 and rounds >= 2, got k={k}, rounds={rounds}")
    gen = torch.Generator().manual_seed(seed)
    accepted = torch.rand(rounds, k, generator=gen, dtype=torch.float64) < alpha
    tokens = 1 + accepted.long().cumprod(dim=1).sum(dim=1).double()  # leading run of acceptances
    return tokens.mean().item(), (tokens.std() / rounds**0.5).item()


CASES = ((0.0, 4), (0.5, 1), (0.5, 3), (0.8, 4), (0.3, 6), (1.0, 5))

MISTAKES: dict[str, Callable[[float, int], float]] = {
    "the token the target model adds itself (the '1 +') is missing":
        lambda a, k: sum(a**i for i in range(1, k + 1)),
    "the sum stops one draft early (α^k is missing)": lambda a, k: sum(a**i for i in range(k)),
    "every draft is counted as accepted independently (k·α instead of the leading run)": lambda a, k: 1 + k * a,
}


def check_expected_tokens(fn: Callable[[float, int], float], z: float = 5.0) -> None:
    """``fn(alpha, k)`` against the simulated mean: within ``z`` standard errors (exact at α = 0, 1)."""
    for seed, (alpha, k) in enumerate(CASES):
        try:
            got = float(fn(alpha, k))
        except NotImplementedError as err:
            raise ExerciseError("expected_tokens is not written yet (it raised NotImplementedError).") from err
        mean, se = simulated_tokens_per_round(alpha, k, seed=seed)
        if abs(got - mean) > z * se + 1e-9:
            hint = next((words for words, wrong in MISTAKES.items() if abs(wrong(alpha, k) - got) < 1e-6), None)
            message = (f"expected_tokens({alpha}, {k}) = {got:.4f}, but {200_000:,} simulated rounds average "
                       f"{mean:.4f} ± {se:.4f}")
            raise ExerciseError(f"likely mistake: {hint}. {message}" if hint else message)
    _ok(f"expected_tokens agrees with the simulated rounds in all {len(CASES)} cases.")


# ---- exercise 15.3: blocks for a workload --------------------------------------------------------

BLOCKS_MISTAKES: dict[str, Callable[[list[int], int], int]] = {
    "the division rounds down: a partly filled last block still takes a whole block":
        lambda lengths, b: sum(n // b for n in lengths),
    "every sequence gets one block too many when its length is a multiple of the block size "
    "(n // b + 1 is not a ceiling)":
        lambda lengths, b: sum(n // b + 1 for n in lengths),
    "the total length is divided once: blocks are not shared between sequences, each one rounds up "
    "on its own":
        lambda lengths, b: -(-sum(lengths) // b),
    "one count per sequence is returned: the question asks for the total number of blocks":
        lambda lengths, b: [-(-n // b) for n in lengths],
}


def allocated_blocks(lengths: list[int], block_size: int, max_len: int = 64) -> int:
    """How many blocks a :class:`PagedKVCache` hands out when every sequence of ``lengths`` is
    added and grown one token at a time (section 2's measurement, on a one-layer cache)."""
    report = waste_report(lambda: PagedKVCache(1, 1, 2, num_blocks=1024, block_size=block_size),
                          lengths, max_len)
    return report["blocks"]


def check_blocks_needed(fn: Callable[[list[int], int], int]) -> None:
    """Exercise 15.3: ``fn(lengths, block_size)`` against the allocator, on section 2's workloads
    (64 requests of ``mixed_workload``, seeds 0 to 2, blocks of 4 and 16) and small hand-made ones."""
    check_equal(fn, [((list(lengths), bs), n) for lengths, bs, n in _blocks_cases()], name="blocks_needed",
                mistakes=BLOCKS_MISTAKES)


@functools.cache
def _blocks_cases() -> tuple[tuple[tuple[int, ...], int, int], ...]:
    workloads = [[len(r.prompt) + r.max_new_tokens for r in mixed_workload(64, 32, seed=seed)] for seed in range(3)]
    workloads = [[1, 16, 17], [16, 32, 48], [5], *workloads]
    return tuple((tuple(lengths), bs, allocated_blocks(lengths, bs)) for lengths in workloads for bs in (16, 4))
