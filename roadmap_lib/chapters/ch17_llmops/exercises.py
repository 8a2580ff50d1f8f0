"""The checks of chapter 17's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (from :mod:`roadmap_lib.llmops`, never
imported into the notebook's namespace under the answer's name) and declares the usual mistakes as
small wrong implementations.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from roadmap_lib.exercises import check_function, check_true
from roadmap_lib.llmops import stats
from roadmap_lib.llmops.monitoring import ks_statistic as _ks_reference

# ---- exercise 17.1: the KS statistic -------------------------------------------------------------


def _ecdf_gap(a, b, *, at="both", signed=False):
    a, b = np.sort(np.asarray(a, dtype=float).ravel()), np.sort(np.asarray(b, dtype=float).ravel())
    x = {"both": np.concatenate([a, b]), "a": a}[at]
    gap = np.searchsorted(a, x, side="right") / a.size - np.searchsorted(b, x, side="right") / b.size
    return float(gap.max() if signed else np.abs(gap).max())


KS_MISTAKES = {
    "the gap is measured only at the points of the first sample (the largest gap can sit at a point of the second)":
        lambda a, b: _ecdf_gap(a, b, at="a"),
    "the gap is signed (F_a − F_b only): take its absolute value":
        lambda a, b: _ecdf_gap(a, b, signed=True),
}


def ks_cases() -> list[tuple[tuple[torch.Tensor, torch.Tensor], float]]:
    cases = []
    for seed, (n, m, shift, rounding) in enumerate([(50, 80, 0.3, None), (40, 40, -0.5, 1), (7, 300, 0.0, 1),
                                                    (200, 30, 1.0, None)]):
        g = torch.Generator().manual_seed(seed)
        a, b = torch.randn(n, generator=g).double(), torch.randn(m, generator=g).double() + shift
        if rounding is not None:  # ties, as NLLs rounded for a log would have
            a, b = a.round(decimals=rounding), b.round(decimals=rounding)
        cases.append(((a, b), _ks_reference(a, b)))
    # the largest gap sits at a point of b: 4/5 of b but 1/3 of a lie at or below 0.8
    a, b = torch.tensor([0.0, 1.0, 2.0]).double(), torch.tensor([0.5, 0.6, 0.7, 0.8, 5.0]).double()
    cases.append(((a, b), _ks_reference(a, b)))
    return cases


def check_ks_statistic(fn) -> None:
    """Exercise 17.1: ``fn(a, b)`` is the two-sample KS statistic of two 1-D tensors."""
    check_function(fn, ks_cases(), name="ks_statistic", atol=1e-6, rtol=0, mistakes=KS_MISTAKES)


# ---- exercise 17.2: the two-proportion z statistic ---------------------------------------------


def _z(xa, na, xb, nb, *, pooled=True, sign=1.0, se_n=None):
    pa, pb = xa / na, xb / nb
    if pooled:
        p = (xa + xb) / (na + nb)
        var = p * (1 - p) * ((1 / na + 1 / nb) if se_n is None else se_n)
    else:
        var = pa * (1 - pa) / na + pb * (1 - pb) / nb
    return sign * (pb - pa) / math.sqrt(var)


Z_MISTAKES = {
    "the standard error is not pooled (under the null both arms share one rate, (x_a + x_b) / (n_a + n_b))":
        lambda xa, na, xb, nb: _z(xa, na, xb, nb, pooled=False),
    "the sign is reversed: the statistic is B's rate minus A's":
        lambda xa, na, xb, nb: _z(xa, na, xb, nb, sign=-1.0),
    "the variance uses 1/(n_a + n_b) instead of 1/n_a + 1/n_b":
        lambda xa, na, xb, nb: _z(xa, na, xb, nb, se_n=1 / (na + nb)),
}


def z_cases() -> list[tuple[tuple[int, int, int, int], float]]:
    rows = [(45, 100, 60, 100), (480, 1000, 455, 1000), (30, 80, 52, 120), (7, 20, 15, 25)]
    return [(row, stats.two_proportion_ztest(*row).statistic) for row in rows]


def check_two_proportion_z(fn) -> None:
    """Exercise 17.2: ``fn(x_a, n_a, x_b, n_b)`` is the pooled two-proportion z statistic."""
    check_function(fn, z_cases(), name="two_proportion_z", atol=1e-5, rtol=1e-5, mistakes=Z_MISTAKES)


# ---- exercise 17.3: sample size, predicted then measured ------------------------------------------


def _n(p_a, p_b, alpha=0.05, power=0.8, *, z_alpha=None, with_power=True, pooled_null=True):
    za = stats.normal_quantile(1 - alpha / 2) if z_alpha is None else z_alpha(alpha)
    zb = stats.normal_quantile(power) if with_power else 0.0
    p_bar = (p_a + p_b) / 2
    null_sd = math.sqrt(2 * p_bar * (1 - p_bar)) if pooled_null else math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))
    return math.ceil((za * null_sd + zb * math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))) ** 2 / (p_a - p_b) ** 2)


SAMPLE_SIZE_MISTAKES = {
    "the test is two-sided: use z at 1 − α/2, not 1 − α":
        lambda pa, pb, alpha, power: _n(pa, pb, alpha, power, z_alpha=lambda a: stats.normal_quantile(1 - a)),
    "the power term z_power · sd is missing: that n gives a power of about one half":
        lambda pa, pb, alpha, power: _n(pa, pb, alpha, power, with_power=False),
}


def sample_size_cases():
    rows = [(0.5, 0.45, 0.05, 0.8), (0.1, 0.12, 0.05, 0.8), (0.3, 0.4, 0.01, 0.9), (0.7, 0.6, 0.05, 0.5)]
    return [(row, float(stats.sample_size_two_proportions(row[0], row[1], alpha=row[2], power=row[3])))
            for row in rows]


def check_sample_size(fn) -> None:
    """Exercise 17.3: ``fn(p_a, p_b, alpha, power)`` is the examples per arm of the z test. The
    pooled-variance formula of the chapter is the reference; an answer within 1 % of it (another
    textbook's variant, e.g. the unpooled null variance) is accepted."""
    def as_float(*args):  # an int answer is compared with a tolerance too
        got = fn(*args)
        return got if got is None else float(got)

    check_function(as_float, sample_size_cases(), name="n_per_arm", atol=0.5, rtol=0.01,
                   mistakes=SAMPLE_SIZE_MISTAKES)


def check_measured_power(power: float, target: float, sims: int) -> None:
    """The simulated power at the predicted n is within three standard errors of ``target``."""
    se = math.sqrt(target * (1 - target) / sims)
    check_true(abs(power - target) <= 3 * se,
               fail=f"at your n the simulated power is {power:.3f}, not within 3 standard errors "
                    f"({3 * se:.3f}) of the {target} you planned for",
               success=f"simulated power {power:.3f} is within {3 * se:.3f} of the planned {target}")
