"""What training and serving a transformer costs: FLOPs -> accelerator-hours -> money, energy, CO2.

Every assumption is a parameter, none is hidden in a constant:

- :class:`Hardware`: the accelerator's peak FLOP/s (at the precision used), its price per hour
  (rented or amortised), and its power draw in watts;
- ``mfu``: *model FLOPs utilisation*, the share of the peak that the training actually reaches
  (:cite:`chowdhery2022palm` reports 46% for PaLM; 30-50% is common for large dense models);
- ``pue``: the data centre's power usage effectiveness (total facility power / IT power);
- ``grams_co2_per_kwh``: the carbon intensity of the electricity.

Training compute uses the standard estimate ``C = 6 N D`` FLOPs for ``N`` parameters and ``D``
tokens (:func:`roadmap_lib.scaling.kaplan_flops`, :cite:`kaplan2020scaling`): 2 N per token forward,
4 N backward. Serving cost is price per hour divided by tokens per hour, from a *measured* throughput.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .scaling import kaplan_flops

SECONDS_PER_HOUR = 3600.0
JOULES_PER_KWH = 3.6e6


def _positive(name: str, value, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}: expected a number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def _fraction(name: str, value) -> float:
    v = _positive(name, value)
    if v > 1:
        raise ValueError(f"{name}: expected a fraction in (0, 1], got {value!r} (write 40% as 0.4)")
    return v


@dataclass(frozen=True)
class Hardware:
    """One accelerator: ``peak_flops`` (FLOP/s at the training precision), ``price_per_hour``
    (currency units per accelerator-hour) and ``watts`` (average board power while busy)."""

    name: str
    peak_flops: float
    price_per_hour: float
    watts: float

    def __post_init__(self) -> None:
        _positive("peak_flops", self.peak_flops)
        _positive("price_per_hour", self.price_per_hour, allow_zero=True)
        _positive("watts", self.watts, allow_zero=True)


def training_flops(n_params: float, tokens: float) -> float:
    """``6 N D``: training FLOPs of a dense transformer (:func:`roadmap_lib.scaling.kaplan_flops`)."""
    return float(kaplan_flops(_positive("n_params", n_params), _positive("tokens", tokens)))


def accelerator_hours(flops: float, hardware: Hardware, mfu: float) -> float:
    """Accelerator-hours to do ``flops`` at ``mfu`` times ``hardware.peak_flops``."""
    return _positive("flops", flops) / (hardware.peak_flops * _fraction("mfu", mfu)) / SECONDS_PER_HOUR


def energy_kwh(hours: float, watts: float, pue: float = 1.0) -> float:
    """kWh drawn by ``hours`` of a ``watts`` device in a facility of power usage effectiveness ``pue``."""
    pue = _positive("pue", pue)
    if pue < 1:
        raise ValueError(f"pue: expected a number >= 1 (facility power / IT power), got {pue!r}")
    return _positive("hours", hours, allow_zero=True) * _positive("watts", watts, allow_zero=True) \
        * pue * SECONDS_PER_HOUR / JOULES_PER_KWH


def carbon_kg(kwh: float, grams_co2_per_kwh: float) -> float:
    """kg of CO2-equivalent for ``kwh`` at a carbon intensity in g/kWh."""
    return _positive("kwh", kwh, allow_zero=True) * _positive("grams_co2_per_kwh", grams_co2_per_kwh,
                                                              allow_zero=True) / 1000.0


def training_cost(n_params: float, tokens: float, hardware: Hardware, *, mfu: float, pue: float = 1.0,
                  grams_co2_per_kwh: float = 0.0) -> dict:
    """The whole chain for one training run: ``flops``, ``hours`` (accelerator-hours), ``cost``,
    ``kwh`` and ``kg_co2``. Divide ``hours`` by the number of accelerators for wall-clock time."""
    flops = training_flops(n_params, tokens)
    hours = accelerator_hours(flops, hardware, mfu)
    kwh = energy_kwh(hours, hardware.watts, pue)
    return {"flops": flops, "hours": hours, "cost": hours * hardware.price_per_hour, "kwh": kwh,
            "kg_co2": carbon_kg(kwh, grams_co2_per_kwh)}


def serving_cost_per_million(tokens_per_second: float, price_per_hour: float) -> float:
    """Cost of generating one million tokens on a machine that rents at ``price_per_hour`` and
    sustains ``tokens_per_second`` (measured, summed over the batch)."""
    per_hour = _positive("tokens_per_second", tokens_per_second) * SECONDS_PER_HOUR
    return _positive("price_per_hour", price_per_hour, allow_zero=True) / per_hour * 1e6


def inference_flops_per_token(n_params: float) -> float:
    """``2 N``: FLOPs of one forward pass per token (the attention term neglected)."""
    return 2.0 * _positive("n_params", n_params)


def serving_tokens_per_second(n_params: float, hardware: Hardware, *, mfu: float) -> float:
    """An *upper* estimate of throughput when compute bound: ``mfu * peak / 2N``. Small-batch
    decoding is memory bound and reaches far less; measure it instead."""
    return hardware.peak_flops * _fraction("mfu", mfu) / inference_flops_per_token(n_params)


__all__ = ["Hardware", "accelerator_hours", "carbon_kg", "energy_kwh", "inference_flops_per_token",
           "serving_cost_per_million", "serving_tokens_per_second", "training_cost", "training_flops"]
