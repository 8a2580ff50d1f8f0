"""Power laws: fitting y = c · x**p to measured costs or losses.

Chapter 04 fits the quadratic cost of attention; chapter 09 grows this module into the scaling-law
fits of Kaplan et al. and Hoffmann et al.
"""

from __future__ import annotations

import math

import torch


def fit_power_law(x, y) -> tuple[float, float]:
    """Least-squares fit of y = c · x**p on log-log axes; returns ``(p, c)``.

    ``x`` and ``y`` are sequences of the same length (at least 2) of positive numbers.
    """
    lx = torch.as_tensor(x, dtype=torch.float64)
    ly = torch.as_tensor(y, dtype=torch.float64)
    if lx.ndim != 1 or ly.shape != lx.shape:
        raise ValueError(f"x, y: expected two 1-D sequences of one length, got shapes "
                         f"{tuple(lx.shape)} and {tuple(ly.shape)}")
    if lx.numel() < 2:
        raise ValueError(f"x: expected at least 2 points, got {lx.numel()}")
    if (lx <= 0).any() or (ly <= 0).any():
        raise ValueError("x, y: expected positive values (a power law is fitted on log-log axes)")
    lx, ly = torch.log(lx), torch.log(ly)
    p = ((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()
    return p.item(), math.exp((ly.mean() - p * lx.mean()).item())


__all__ = ["fit_power_law"]
