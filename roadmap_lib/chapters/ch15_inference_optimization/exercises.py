"""Checks for chapter 15's exercises that must not spell out the answer they check.

Exercise 15.2 asks for the expected number of tokens a speculative round yields. Its check does not
compare with the closed form (that would print the answer in the notebook): it simulates the
acceptance process the exercise describes and compares with the simulated mean, within a few of its
standard errors.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from roadmap_lib.exercises import ExerciseError, _ok


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
