"""roadmap_lib.llmops.stats against scipy.stats, plus properties of the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.llmops import stats


@given(st.integers(1, 400), st.integers(1, 400), st.data())
@settings(max_examples=60, deadline=None)
def test_z_test_squared_is_pearson_chi2(n_a, n_b, data):
    x_a, x_b = data.draw(st.integers(0, n_a)), data.draw(st.integers(0, n_b))
    res = stats.two_proportion_ztest(x_a, n_a, x_b, n_b)
    if x_a + x_b in (0, n_a + n_b):
        assert res.pvalue == 1.0 and res.statistic == 0.0
        return
    chi2 = scipy.stats.chi2_contingency([[x_a, n_a - x_a], [x_b, n_b - x_b]], correction=False)
    assert res.statistic**2 == pytest.approx(chi2.statistic, rel=1e-9, abs=1e-12)
    assert res.pvalue == pytest.approx(chi2.pvalue, rel=1e-7, abs=1e-12)
    assert math.copysign(1, res.statistic) == math.copysign(1, x_b / n_b - x_a / n_a) or res.statistic == 0


def test_z_test_hand_case():
    # 45/100 vs 60/100: pooled 0.525, se = sqrt(.525 .475 .02) = 0.070622..., z = 0.15 / se
    res = stats.two_proportion_ztest(45, 100, 60, 100)
    assert res.statistic == pytest.approx(0.15 / math.sqrt(0.525 * 0.475 * 0.02), rel=1e-12)
    assert res.pvalue == pytest.approx(2 * scipy.stats.norm.sf(res.statistic), rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_permutation_exact_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=10), rng.normal(size=10) + 0.4 * seed
    ours = stats.permutation_test(a, b, paired=True, n_resamples=5000)
    theirs = scipy.stats.permutation_test((a, b), lambda u, v: np.mean(v) - np.mean(u),
                                          permutation_type="samples", n_resamples=5000)
    assert ours.pvalue == pytest.approx(theirs.pvalue, abs=1e-12)
    assert ours.statistic == pytest.approx(b.mean() - a.mean())


@pytest.mark.parametrize("sizes", [(5, 6), (4, 9), (7, 7)])
def test_unpaired_permutation_exact_matches_scipy(sizes):
    rng = np.random.default_rng(sum(sizes))
    a, b = rng.normal(size=sizes[0]), rng.exponential(size=sizes[1])
    ours = stats.permutation_test(a, b, n_resamples=10_000)
    theirs = scipy.stats.permutation_test((a, b), lambda u, v: np.mean(v) - np.mean(u),
                                          permutation_type="independent", n_resamples=10_000)
    assert ours.pvalue == pytest.approx(theirs.pvalue, abs=1e-12)


def test_randomised_permutation_agrees_with_scipy_within_monte_carlo_error():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=60), rng.normal(size=70) + 0.35
    ours = stats.permutation_test(a, b, n_resamples=4000, seed=0)
    theirs = scipy.stats.permutation_test((a, b), lambda u, v: np.mean(v) - np.mean(u), n_resamples=4000,
                                          permutation_type="independent", rng=np.random.default_rng(0))
    se = math.sqrt(theirs.pvalue * (1 - theirs.pvalue) / 4000)
    assert abs(ours.pvalue - theirs.pvalue) < 5 * se + 2e-3
    assert ours.pvalue >= 1 / 4001  # a randomised p-value is never 0


def test_pairing_removes_shared_variation():
    rng = np.random.default_rng(0)
    hardness = rng.normal(scale=3.0, size=40)  # per-example difficulty shared by both models
    a, b = hardness + rng.normal(scale=0.1, size=40), hardness + 0.2 + rng.normal(scale=0.1, size=40)
    assert stats.permutation_test(a, b, paired=True, n_resamples=2000).pvalue < 0.01
    assert stats.permutation_test(a, b, paired=False, n_resamples=2000).pvalue > 0.3


def test_sample_size_hand_case_and_power_round_trip():
    # p 0.5 vs 0.6, alpha 0.05, power 0.8: (1.95996 sqrt(.495) + 0.84162 sqrt(.49))^2 / 0.01 = 387.3 -> 388
    expected = (1.959963984540054 * math.sqrt(2 * 0.55 * 0.45) + 0.8416212335729143 * math.sqrt(0.25 + 0.24)) ** 2 / 0.01
    n = stats.sample_size_two_proportions(0.5, 0.6)
    assert n == math.ceil(expected) == 388
    assert stats.power_two_proportions(0.5, 0.6, n) == pytest.approx(0.8, abs=2e-3)
    assert stats.power_two_proportions(0.5, 0.6, n - 40) < 0.8 < stats.power_two_proportions(0.5, 0.6, n + 40)


def test_power_matches_simulation():
    n, p_a, p_b = 300, 0.3, 0.4
    rng = np.random.default_rng(0)
    xa, xb = rng.binomial(n, p_a, 4000), rng.binomial(n, p_b, 4000)
    sim = np.mean([stats.two_proportion_ztest(int(u), n, int(v), n).pvalue < 0.05 for u, v in zip(xa, xb)])
    assert abs(sim - stats.power_two_proportions(p_a, p_b, n)) < 3 * math.sqrt(0.25 / 4000)


def test_peeking_inflates_false_positives():
    fixed = stats.simulate_peeking(0.3, 500, 1, n_sims=3000, seed=0)
    peeking = stats.simulate_peeking(0.3, 500, 25, n_sims=3000, seed=0)
    assert abs(fixed - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 3000)
    assert peeking > 2.5 * fixed


def test_normal_quantile_matches_scipy():
    for p in (1e-6, 0.025, 0.5, 0.8, 0.975):
        assert stats.normal_quantile(p) == pytest.approx(scipy.stats.norm.ppf(p), rel=1e-12, abs=1e-12)
        assert stats.normal_cdf(stats.normal_quantile(p)) == pytest.approx(p, rel=1e-10)


@pytest.mark.parametrize("call, words", [
    (lambda: stats.two_proportion_ztest(5, 4, 1, 10), "successes_a"),
    (lambda: stats.two_proportion_ztest(1, 4, 1, 0), "n_b"),
    (lambda: stats.permutation_test([1.0, 2.0], [1.0], paired=True), "paired"),
    (lambda: stats.permutation_test([], [1.0]), "a: expected a non-empty"),
    (lambda: stats.permutation_test(torch.tensor([1.0, float("nan")]), [1.0]), "finite"),
    (lambda: stats.sample_size_two_proportions(0.5, 0.5), "different from p_a"),
    (lambda: stats.sample_size_two_proportions(0.5, 1.2), "p_b"),
    (lambda: stats.sample_size_two_proportions(0.5, 0.6, power=1.0), "power"),
    (lambda: stats.simulate_peeking(0.5, 10, 11), "looks"),
    (lambda: stats.normal_quantile(1.0), "p: expected"),
])
def test_bad_input_is_named(call, words):
    with pytest.raises(ValueError, match=words):
        call()
