"""The statistics of an A/B test between two models, written out (chapter 17).

- :func:`two_proportion_ztest`: is model B's success rate different from model A's? (pooled z test);
- :func:`permutation_test`: the same question for any per-example metric, without a normal
  approximation: shuffle which model each score came from (unpaired: split traffic) or flip the sign
  of each per-example difference (paired: both models saw the same examples);
- :func:`sample_size_two_proportions` and :func:`power_two_proportions`: how much traffic a test
  needs to see a given difference, before running it;
- :func:`simulate_peeking`: what repeated looks at a running test do to its false positive rate.

Conventions follow ``scipy.stats`` so the tests can compare: two-sided p-values, a randomised
permutation p-value of ``(1 + #{as extreme}) / (1 + n_resamples)`` (never 0), and a two-sided
permutation p-value of ``2 · min(p_less, p_greater)`` capped at 1. Inputs are array-likes (tensors,
lists, numpy arrays) of numbers; results are Python floats. Confidence intervals by resampling are
chapter 21's (``bootstrap_ci``), not repeated here.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

_SQRT2 = math.sqrt(2.0)


def normal_cdf(z: float) -> float:
    """Φ(z), the standard normal distribution function."""
    return 0.5 * math.erfc(-z / _SQRT2)


def normal_quantile(p: float) -> float:
    """Φ⁻¹(p) (``torch.special.ndtri`` in float64)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: expected a probability strictly between 0 and 1, got {p!r}")
    return float(torch.special.ndtri(torch.tensor(p, dtype=torch.float64)))


def _as_array(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D sequence of numbers, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite numbers, got NaN or inf")
    return arr


def _check_counts(successes: int, n: int, name: str) -> None:
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n_{name}: expected an int >= 1, got {n!r}")
    if not (0 <= successes <= n):
        raise ValueError(f"successes_{name}: expected a count between 0 and n_{name}={n}, got {successes!r}")


@dataclass(frozen=True)
class TestResult:
    statistic: float  # z for the z test; the mean difference (B − A) for the permutation test
    pvalue: float


def two_proportion_ztest(successes_a: int, n_a: int, successes_b: int, n_b: int) -> TestResult:
    """Two-sided z test of ``p_a = p_b`` from ``successes_a`` of ``n_a`` and ``successes_b`` of ``n_b``.

    Under the null both rates equal the pooled rate p̂ = (x_a + x_b) / (n_a + n_b), so

        z = (p̂_b − p̂_a) / sqrt(p̂ (1 − p̂) (1/n_a + 1/n_b)),   p = 2 (1 − Φ(|z|)).

    z² is Pearson's χ² statistic of the 2×2 table without continuity correction. Both groups must be
    independent (split traffic); for two models scored on the same examples use the paired
    :func:`permutation_test`.
    """
    _check_counts(successes_a, n_a, "a")
    _check_counts(successes_b, n_b, "b")
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0.0:  # every example succeeded, or none did: no evidence of a difference
        return TestResult(0.0, 1.0)
    z = (successes_b / n_b - successes_a / n_a) / se
    return TestResult(z, min(1.0, 2.0 * normal_cdf(-abs(z))))


def _permutation_null(a: np.ndarray, b: np.ndarray, paired: bool, n_resamples: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Mean differences (B − A) under the null: all of them when there are at most ``n_resamples``
    distinct rearrangements (exact), else ``n_resamples`` random ones."""
    if paired:
        d = b - a
        if 2 ** d.size <= n_resamples:
            signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
            return (signs * d).mean(axis=1), True
        signs = rng.choice((-1.0, 1.0), size=(n_resamples, d.size))
        return (signs * d).mean(axis=1), False
    pooled, n_a = np.concatenate([a, b]), a.size
    if math.comb(pooled.size, n_a) <= n_resamples:
        out = []
        for idx in itertools.combinations(range(pooled.size), n_a):
            mask = np.zeros(pooled.size, dtype=bool)
            mask[list(idx)] = True
            out.append(pooled[~mask].mean() - pooled[mask].mean())
        return np.array(out), True
    perms = np.argsort(rng.random((n_resamples, pooled.size)), axis=1)
    shuffled = pooled[perms]
    return shuffled[:, n_a:].mean(axis=1) - shuffled[:, :n_a].mean(axis=1), False


def permutation_test(a, b, *, paired: bool = False, n_resamples: int = 9999, seed: int = 0) -> TestResult:
    """Two-sided permutation test that B's per-example metric has the same mean as A's.

    ``paired=False`` (split traffic, ``a`` and ``b`` of any lengths): under the null the model
    labels are exchangeable, so the observed difference of means is compared with the differences
    after shuffling the labels. ``paired=True`` (both models scored on the same examples, ``a[i]``
    and ``b[i]`` on example i): under the null each difference ``b[i] − a[i]`` is as likely to have
    the other sign, so the signs are flipped at random. Pairing removes the example-to-example
    variation that both models share, which is why it needs far less traffic.

    Exact (every rearrangement) when there are at most ``n_resamples`` of them, else randomised with
    ``numpy.random.default_rng(seed)``. Statistic: mean(b) − mean(a).
    """
    a, b = _as_array(a, "a"), _as_array(b, "b")
    if paired and a.size != b.size:
        raise ValueError(f"b: a paired test needs as many scores as a ({a.size}), got {b.size}")
    if not (isinstance(n_resamples, int) and n_resamples >= 1):
        raise ValueError(f"n_resamples: expected an int >= 1, got {n_resamples!r}")
    observed = float(b.mean() - a.mean())
    null, exact = _permutation_null(a, b, paired, n_resamples, np.random.default_rng(seed))
    # Compare with a relative tolerance, as scipy does, so that float rounding of equal sums counts.
    eps = 1e-14 * abs(observed)
    greater, less = np.sum(null >= observed - eps), np.sum(null <= observed + eps)
    adjust = 0 if exact else 1
    p_greater = (greater + adjust) / (null.size + adjust)
    p_less = (less + adjust) / (null.size + adjust)
    return TestResult(observed, float(min(1.0, 2.0 * min(p_greater, p_less))))


def _check_rates(p_a: float, p_b: float, alpha: float) -> None:
    for name, p in (("p_a", p_a), ("p_b", p_b)):
        if not 0.0 < p < 1.0:
            raise ValueError(f"{name}: expected a rate strictly between 0 and 1, got {p!r}")
    if p_a == p_b:
        raise ValueError(f"p_b: expected a rate different from p_a={p_a!r} (no difference to detect)")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: expected a significance level in (0, 1), got {alpha!r}")


def sample_size_two_proportions(p_a: float, p_b: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Examples per arm for the two-sided :func:`two_proportion_ztest` at level ``alpha`` to reject
    with probability ``power`` when the true rates are ``p_a`` and ``p_b`` (equal arms):

        n = ( z_{1−α/2} sqrt(2 p̄ (1 − p̄)) + z_{power} sqrt(p_a (1 − p_a) + p_b (1 − p_b)) )² / (p_a − p_b)²

    with p̄ = (p_a + p_b) / 2, rounded up (the normal approximation; the rarely rejecting far tail
    is ignored)."""
    _check_rates(p_a, p_b, alpha)
    if not 0.0 < power < 1.0:
        raise ValueError(f"power: expected a probability in (0, 1), got {power!r}")
    p_bar = (p_a + p_b) / 2
    num = (normal_quantile(1 - alpha / 2) * math.sqrt(2 * p_bar * (1 - p_bar))
           + normal_quantile(power) * math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b)))
    return math.ceil(num**2 / (p_a - p_b) ** 2)


def power_two_proportions(p_a: float, p_b: float, n: int, *, alpha: float = 0.05) -> float:
    """The probability that the two-sided z test with ``n`` examples per arm rejects when the true
    rates are ``p_a`` and ``p_b`` (normal approximation, both tails)."""
    _check_rates(p_a, p_b, alpha)
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    p_bar = (p_a + p_b) / 2
    se0 = math.sqrt(2 * p_bar * (1 - p_bar) / n)  # the null's standard error
    se1 = math.sqrt((p_a * (1 - p_a) + p_b * (1 - p_b)) / n)  # the alternative's
    z = normal_quantile(1 - alpha / 2)
    delta = abs(p_b - p_a)
    return normal_cdf((delta - z * se0) / se1) + normal_cdf((-delta - z * se0) / se1)


def simulate_peeking(p: float, n_per_arm: int, looks: int, *, alpha: float = 0.05, n_sims: int = 2000,
                     seed: int = 0) -> float:
    """The false positive rate of an A/A test (both arms convert at rate ``p``) when the z test is
    run after every ``n_per_arm // looks`` examples per arm and the test is stopped at the first
    p < ``alpha``. ``looks=1`` is the fixed-horizon test, whose rate is about ``alpha``."""
    if not (isinstance(looks, int) and 1 <= looks <= n_per_arm):
        raise ValueError(f"looks: expected an int between 1 and n_per_arm={n_per_arm}, got {looks!r}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: expected a rate strictly between 0 and 1, got {p!r}")
    rng = np.random.default_rng(seed)
    a = rng.random((n_sims, n_per_arm)) < p
    b = rng.random((n_sims, n_per_arm)) < p
    ca, cb = np.cumsum(a, axis=1), np.cumsum(b, axis=1)
    at = [round(n_per_arm * (k + 1) / looks) for k in range(looks)]
    rejected = np.zeros(n_sims, dtype=bool)
    z_crit = normal_quantile(1 - alpha / 2)
    for n in at:
        xa, xb = ca[:, n - 1], cb[:, n - 1]
        pooled = (xa + xb) / (2 * n)
        se = np.sqrt(pooled * (1 - pooled) * 2 / n)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(se > 0, (xb - xa) / n / se, 0.0)
        rejected |= np.abs(z) > z_crit
    return float(rejected.mean())


__all__ = [
    "TestResult",
    "normal_cdf",
    "normal_quantile",
    "permutation_test",
    "power_two_proportions",
    "sample_size_two_proportions",
    "simulate_peeking",
    "two_proportion_ztest",
]
