"""WEAT and the paired permutation test, against hand computations."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.fairness import (
    association,
    paired_permutation_test,
    two_sample_permutation_test,
    weat_effect_size,
    weat_test,
)


def _unit(deg):
    r = math.radians(deg)
    return [math.cos(r), math.sin(r)]


# 2-D words at known angles: cos(w, a) = cos(angle difference)
A = torch.tensor([_unit(0)])
B = torch.tensor([_unit(90)])
X = torch.tensor([_unit(10), _unit(30)])
Y = torch.tensor([_unit(60), _unit(80)])


def test_association_and_effect_size_by_hand():
    c = lambda d: math.cos(math.radians(d))
    s = [c(th) - c(90 - th) for th in (10, 30, 60, 80)]
    assert association(torch.cat([X, Y]), A, B).tolist() == pytest.approx(s)
    mean = sum(s) / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in s) / 3)
    assert weat_effect_size(X, Y, A, B) == pytest.approx(((s[0] + s[1]) / 2 - (s[2] + s[3]) / 2) / std)


def test_exact_p_value_by_enumeration():
    # X holds the two most A-like words: only the observed split of C(4,2)=6 reaches its statistic
    r = weat_test(X, Y, A, B)
    assert r["exact"] and r["p_value"] == 0.0
    assert weat_test(Y, X, A, B)["p_value"] == pytest.approx(5 / 6)


def test_effect_size_is_invariant_to_scaling_and_antisymmetric():
    g = torch.Generator().manual_seed(0)
    x, y, a, b = (torch.randn(5, 8, generator=g) for _ in range(4))
    d = weat_effect_size(x, y, a, b)
    assert weat_effect_size(3 * x, y, 2 * a, b) == pytest.approx(d)
    assert weat_effect_size(y, x, a, b) == pytest.approx(-d)
    assert weat_effect_size(x, y, b, a) == pytest.approx(-d)


def test_random_p_value_agrees_with_exact():
    g = torch.Generator().manual_seed(1)
    x, y, a, b = (torch.randn(6, 8, generator=g) for _ in range(4))
    exact = weat_test(x, y, a, b, n_permutations=1000)  # C(12, 6) = 924 <= 1000
    sampled = weat_test(x, y, a, b, n_permutations=500, generator=torch.Generator().manual_seed(0))
    assert exact["exact"] and not sampled["exact"]
    assert sampled["p_value"] == pytest.approx(exact["p_value"], abs=0.06)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_weat_p_values_are_uniform_under_the_null(seed):
    # words drawn independently of A and B: the share of p < 0.1 is about 0.1
    g = torch.Generator().manual_seed(seed)
    ps = [weat_test(*(torch.randn(4, 5, generator=g) for _ in range(4)))["p_value"] for _ in range(300)]
    assert abs(sum(p < 0.1 for p in ps) / 300 - 0.1) < 0.06


def test_paired_permutation_test():
    g = torch.Generator().manual_seed(0)
    assert paired_permutation_test(torch.ones(12) + 0.1 * torch.randn(12, generator=g), generator=g) < 0.001
    gaps = torch.tensor([1.0, -1.0, 0.5, -0.5, 0.2, -0.2])
    assert paired_permutation_test(gaps, generator=g) == 1.0
    # exact two-sided p of 6 positive gaps of equal size: 2 / 2^6
    ex = sum(abs(sum(s)) >= 6 for s in itertools.product([1, -1], repeat=6)) / 64
    assert paired_permutation_test(torch.ones(6), n_permutations=20000, generator=g) == pytest.approx(ex, abs=0.01)


def test_two_sample_permutation_test_against_enumeration():
    a, b = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0.0, -1.0, 0.5])
    pooled = torch.cat([a, b])
    obs = abs(float(a.mean() - b.mean()))
    exact = sum(abs(float(pooled[list(i)].mean() - pooled[[j for j in range(6) if j not in i]].mean())) >= obs - 1e-12
                for i in itertools.combinations(range(6), 3)) / 20
    got = two_sample_permutation_test(a, b, n_permutations=20000, generator=torch.Generator().manual_seed(0))
    assert got == pytest.approx(exact, abs=0.01)
    far = two_sample_permutation_test(torch.randn(20) + 5, torch.randn(20), generator=torch.Generator().manual_seed(0))
    assert far < 0.001


@pytest.mark.parametrize("call, match", [
    (lambda: two_sample_permutation_test(torch.ones(1), torch.ones(3)), "a"),
    (lambda: two_sample_permutation_test(torch.ones(3), torch.ones(3, 2)), "b"),
    (lambda: weat_effect_size(torch.zeros(3), Y, A, B), "X"),
    (lambda: weat_effect_size(X, torch.zeros(2, 3), A, B), "Y"),
    (lambda: association(X, torch.zeros(1, 3), B), "A"),
    (lambda: weat_test(X, Y, A, B, n_permutations=0), "n_permutations"),
    (lambda: paired_permutation_test(torch.ones(1)), "gaps"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
