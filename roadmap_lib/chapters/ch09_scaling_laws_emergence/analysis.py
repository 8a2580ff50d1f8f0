"""What chapter 09 computes from the sweep's record: the frontier, the fits, IsoFLOP optima, noise."""

from __future__ import annotations

import math
import statistics

import torch

from roadmap_lib.chapters.ch09_scaling_laws_emergence.sweep import STEPS, curves, main_runs, points
from roadmap_lib.scaling import (
    fit_chinchilla,
    fit_saturating_power_law,
    isoflop_profile,
    kaplan_flops,
    parabola_minimum,
)


def frontier(record: dict, n_grid: int = 40) -> tuple[list[float], list[float], list[int]]:
    """The compute frontier: at each C (log grid), the lowest loss any size reaches with at most
    C = 6·N·D FLOPs (a size whose curve ends before C keeps its last loss).

    Returns ``(flops, loss, N of the size on the frontier)``.
    """
    cs = curves(record)
    lo = min(kaplan_flops(n, t[0]) for n, t, _ in cs)
    hi = max(kaplan_flops(n, t[-1]) for n, t, _ in cs)
    grid = torch.logspace(math.log10(lo), math.log10(hi), n_grid, dtype=torch.float64).tolist()
    out_c, out_l, out_n = [], [], []
    for c in grid:
        prof = isoflop_profile(cs, c)
        prof += [(n, losses[-1]) for n, tokens, losses in cs if kaplan_flops(n, tokens[-1]) < c]
        if prof:
            n, loss = min(prof, key=lambda p: p[1])
            out_c.append(c)
            out_l.append(loss)
            out_n.append(int(n))
    return out_c, out_l, out_n


def isoflop_optima(record: dict, budgets, min_sizes: int = 5) -> list[dict]:
    """For each budget C: its IsoFLOP profile, the parabola's optimum N*, D* = C/(6 N*), D*/N*.

    A budget whose profile has fewer than ``min_sizes`` sizes, or whose minimum is at an end of the
    profile (the parabola would extrapolate), is reported with ``n_opt = None``.
    """
    cs = curves(record)
    out = []
    for c in budgets:
        prof = isoflop_profile(cs, c)
        row = {"flops": c, "profile": prof, "n_opt": None, "d_opt": None, "tokens_per_param": None}
        if len(prof) >= min_sizes:
            losses = [l for _, l in prof]
            i = losses.index(min(losses))
            if 0 < i < len(prof) - 1:
                n_opt = parabola_minimum([n for n, _ in prof], losses)
                row.update(n_opt=n_opt, d_opt=c / (6 * n_opt), tokens_per_param=c / (6 * n_opt**2))
        out.append(row)
    return out


def loss_at(run: dict, step: int = STEPS) -> float:
    """A run's validation loss at ``step`` (every size reaches STEPS)."""
    if step not in run["val_steps"]:
        raise ValueError(f"step: expected one of the evaluated steps {run['val_steps']}, got {step}")
    return run["val_loss"][run["val_steps"].index(step)]


def fits(record: dict) -> dict:
    """L(N) after STEPS steps, L(D) of the largest size, and the joint L(N, D) on every point."""
    runs = main_runs(record)
    n = [r["non_embedding"] for r in runs]
    final = [loss_at(r) for r in runs]
    _, tokens, losses = curves(record)[-1]
    return {"L(N)": fit_saturating_power_law(n, final),
            "L(D)": fit_saturating_power_law(tokens, losses),
            "L(N,D)": fit_chinchilla(*points(record))}


def seed_spread(record: dict) -> list[dict]:
    """Loss after STEPS steps of every size run with several seeds: mean, sample std, values."""
    by_size: dict[tuple[int, int], list[float]] = {}
    for r in record["runs"]:
        by_size.setdefault((r["n_layers"], r["d_model"]), []).append(loss_at(r))
    return [{"n_layers": L, "d_model": d, "values": v, "mean": statistics.mean(v),
             "std": statistics.stdev(v)} for (L, d), v in by_size.items() if len(v) >= 3]


def emergence_table(record: dict) -> dict[str, list[float]]:
    """Per size (seed 0, smallest first): N and each per-character score after STEPS steps."""
    runs = main_runs(record)
    table = {"N": [r["non_embedding"] for r in runs]}
    for key in runs[0]["scores"]:
        table[key] = [r["scores"][key] for r in runs]
    return table


__all__ = ["emergence_table", "fits", "frontier", "isoflop_optima", "loss_at", "seed_spread"]
