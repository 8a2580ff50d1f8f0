"""roadmap_lib.llmops.gate: the non-inferiority gate and content hashes."""

import numpy as np
import pytest
import torch

from roadmap_lib.evaluation import bootstrap_ci
from roadmap_lib.llmops.gate import noninferiority_gate, state_dict_sha256


def test_gate_passes_a_harmless_change_and_fails_a_regression():
    rng = np.random.default_rng(0)
    prod = rng.normal(2.0, 0.5, size=400)
    same = prod + rng.normal(0, 0.01, size=400)  # a re-export: per-item noise, no shift
    worse = prod + 0.2 + rng.normal(0, 0.3, size=400)
    ok = noninferiority_gate(same, prod, margin=0.05)
    assert ok.passed and abs(ok.mean_difference) < 0.01 and ok.low < 0 < ok.high < 0.05
    bad = noninferiority_gate(worse, prod, margin=0.05)
    assert not bad.passed and bad.low > 0.1
    assert "FAIL" in str(bad) and "PASS" in str(ok)


def test_too_few_items_is_a_no_even_with_a_small_mean():
    rng = np.random.default_rng(1)
    prod = rng.normal(2.0, 0.5, size=8)
    cand = prod + rng.normal(0.01, 0.3, size=8)
    result = noninferiority_gate(cand, prod, margin=0.05)
    assert result.mean_difference < 0.2 and result.high > 0.05 and not result.passed


def test_gate_interval_is_the_paired_bootstrap():
    rng = np.random.default_rng(2)
    prod, cand = rng.normal(size=50), rng.normal(size=50)
    got = noninferiority_gate(cand, prod, margin=1.0, n=500, seed=3)
    ci = bootstrap_ci(lambda c, p: float((c - p).mean()), torch.tensor(cand), torch.tensor(prod), n=500, seed=3)
    assert (got.low, got.high) == pytest.approx((ci.low, ci.high))


def test_gate_refuses_bad_input():
    with pytest.raises(ValueError, match="same length"):
        noninferiority_gate([1.0, 2.0], [1.0, 2.0, 3.0], margin=0.1)
    with pytest.raises(ValueError, match="margin"):
        noninferiority_gate([1.0, 2.0], [1.0, 2.0], margin=-1)
    with pytest.raises(ValueError, match="finite"):
        noninferiority_gate([1.0, float("nan")], [1.0, 2.0], margin=0.1)


def test_content_hash_depends_on_values_not_on_order_or_storage():
    a = {"x": torch.arange(4.0), "y": torch.ones(2, 2)}
    b = {"y": torch.ones(2, 2).t().contiguous().t(), "x": torch.arange(4.0).clone()}
    assert state_dict_sha256(a) == state_dict_sha256(b)
    c = {"x": torch.arange(4.0), "y": torch.ones(2, 2)}
    c["y"][0, 0] = 1.0000001
    assert state_dict_sha256(c) != state_dict_sha256(a)
    assert state_dict_sha256({"x": torch.arange(4.0).half(), "y": torch.ones(2, 2)}) != state_dict_sha256(a)
    with pytest.raises(ValueError, match="at least one tensor"):
        state_dict_sha256({})
