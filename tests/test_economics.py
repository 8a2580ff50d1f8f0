"""roadmap_lib.economics: hand-computed cases, the link to scaling.kaplan_flops, properties, errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roadmap_lib import economics as E
from roadmap_lib.scaling import kaplan_flops

A100 = E.Hardware("A100", peak_flops=312e12, price_per_hour=2.0, watts=400.0)


def test_training_flops_is_kaplan_6nd():
    assert E.training_flops(7e9, 2e12) == 6 * 7e9 * 2e12 == kaplan_flops(7e9, 2e12)


def test_hours_by_hand():
    # 6 * 7e9 * 2e12 = 8.4e22 FLOPs; 312e12 * 0.4 = 1.248e14 FLOP/s achieved;
    # 8.4e22 / 1.248e14 = 6.730769...e8 s = 186,965.8 h
    assert E.accelerator_hours(8.4e22, A100, mfu=0.4) == pytest.approx(186_965.81, rel=1e-6)


def test_energy_carbon_by_hand():
    # 10 h x 400 W = 4 kWh; x PUE 1.5 = 6 kWh; x 500 g/kWh = 3 kg
    assert E.energy_kwh(10, 400, pue=1.5) == pytest.approx(6.0)
    assert E.carbon_kg(6.0, 500) == pytest.approx(3.0)


def test_training_cost_chain_by_hand():
    hw = E.Hardware("toy", peak_flops=1e12, price_per_hour=3.0, watts=1000.0)
    # 6 * 1e6 * 6e8 = 3.6e15 FLOPs at 0.5 * 1e12 FLOP/s = 7200 s = 2 h; $6; 2 kWh * 1.2 = 2.4 kWh
    r = E.training_cost(1e6, 6e8, hw, mfu=0.5, pue=1.2, grams_co2_per_kwh=250)
    assert r["flops"] == pytest.approx(3.6e15)
    assert r["hours"] == pytest.approx(2.0)
    assert r["cost"] == pytest.approx(6.0)
    assert r["kwh"] == pytest.approx(2.4)
    assert r["kg_co2"] == pytest.approx(0.6)


def test_serving_by_hand():
    # 1000 tokens/s = 3.6e6 tokens/h; $3.6/h -> $1 per million tokens
    assert E.serving_cost_per_million(1000, 3.6) == pytest.approx(1.0)
    # compute-bound: 0.5 * 1e12 / (2 * 1e9) = 250 tokens/s
    hw = E.Hardware("toy", peak_flops=1e12, price_per_hour=1.0, watts=1.0)
    assert E.serving_tokens_per_second(1e9, hw, mfu=0.5) == pytest.approx(250.0)
    assert E.inference_flops_per_token(1e9) == 2e9


@given(n=st.floats(1e6, 1e12), d=st.floats(1e6, 1e13), mfu=st.floats(0.01, 1.0), k=st.floats(1.1, 10))
def test_hours_scale_linearly_in_work_and_inversely_in_mfu(n, d, mfu, k):
    base = E.accelerator_hours(E.training_flops(n, d), A100, mfu)
    assert E.accelerator_hours(E.training_flops(n, k * d), A100, mfu) == pytest.approx(k * base, rel=1e-9)
    assert E.accelerator_hours(E.training_flops(n, d), A100, mfu / k) == pytest.approx(k * base, rel=1e-9)


@pytest.mark.parametrize("call, match", [
    (lambda: E.accelerator_hours(1e20, A100, mfu=40), "mfu: expected a fraction in \\(0, 1\\], got 40"),
    (lambda: E.accelerator_hours(1e20, A100, mfu=0), "mfu: expected a number > 0"),
    (lambda: E.energy_kwh(1, 100, pue=0.9), "pue: expected a number >= 1"),
    (lambda: E.training_flops(-1, 1e9), "n_params: expected a number > 0, got -1"),
    (lambda: E.training_flops(True, 1e9), "n_params: expected a finite number, got True"),
    (lambda: E.serving_cost_per_million(math.inf, 1.0), "tokens_per_second: expected a finite number"),
    (lambda: E.Hardware("x", peak_flops=0, price_per_hour=1, watts=1), "peak_flops: expected a number > 0"),
    (lambda: E.carbon_kg(1.0, -5), "grams_co2_per_kwh: expected a number >= 0"),
])
def test_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
