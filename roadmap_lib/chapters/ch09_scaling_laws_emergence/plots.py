"""Chapter 09's figures. Each helper takes ``ax=None`` (or ``axes=None`` for a row of panels),
draws a new figure when it is omitted, and returns what it drew on."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from roadmap_lib.chapters.ch09_scaling_laws_emergence.sweep import curves
from roadmap_lib.scaling import kaplan_flops


def _ax(ax, size=(6, 4)):
    return ax if ax is not None else plt.subplots(figsize=size, constrained_layout=True)[1]


def plot_loss_vs_compute(record: dict, front=None, ax=None):
    """Validation loss against C = 6·N·D for every size (colour = size), and the frontier."""
    ax = _ax(ax, (7, 4.5))
    cs = curves(record, min_step=0)
    cmap = plt.get_cmap("viridis")
    for i, (n, tokens, losses) in enumerate(cs):
        ax.plot([kaplan_flops(n, t) for t in tokens], losses, color=cmap(i / (len(cs) - 1)), lw=1.2,
                label=f"N={n:,}" if i in (0, len(cs) // 2, len(cs) - 1) else None)
    if front is not None:
        ax.plot(front[0], front[1], "k--", lw=2, label="frontier (lowest loss at each C)")
    ax.set(xscale="log", xlabel="training compute C = 6·N·D (FLOPs, N non-embedding)",
           ylabel="validation loss (nats/char)", title="15 sizes, one curve each (mean of 3 seeds)")
    ax.legend(fontsize=8)
    return ax


def plot_isoflop(optima: list[dict], ax=None, *, highlight: int | None = None):
    """Each budget's IsoFLOP profile (loss against N), its parabola and optimum."""
    ax = _ax(ax)
    cmap = plt.get_cmap("plasma")
    for j, row in enumerate(optima):
        if not row["profile"]:
            continue
        n, loss = map(np.array, zip(*row["profile"]))
        color = cmap(j / max(1, len(optima) - 1))
        alpha = 1.0 if highlight in (None, j) else 0.25
        ax.plot(n, loss, "o", color=color, alpha=alpha, ms=4,
                label=f"C={row['flops']:.1e}")
        if len(n) >= 3:
            c = np.polyfit(np.log(n), loss, 2)
            x = np.linspace(np.log(n.min()), np.log(n.max()), 60)
            ax.plot(np.exp(x), np.polyval(c, x), "-", color=color, alpha=alpha, lw=1)
        if row["n_opt"] is not None:
            ax.axvline(row["n_opt"], color=color, ls=":", alpha=alpha)
    ax.set(xscale="log", xlabel="non-embedding parameters N", ylabel="validation loss (nats/char)",
           title="IsoFLOP profiles (dotted: parabola minimum)")
    ax.legend(fontsize=7)
    return ax


def plot_fit(x, y, fit, ax=None, *, xlabel: str, title: str):
    """Measured points and a fitted L = E + A / x**α on log-x axes."""
    ax = _ax(ax, (5, 3.5))
    x = np.asarray(x, dtype=float)
    grid = np.logspace(math.log10(x.min()), math.log10(x.max()), 100)
    ax.plot(x, y, "o", ms=4, label="measured")
    ax.plot(grid, fit(torch.as_tensor(grid)).numpy(), "-",
            label=f"E + A/x^α, α={fit.alpha:.2f}, E={fit.E:.2f}")
    ax.set(xscale="log", xlabel=xlabel, ylabel="validation loss (nats/char)", title=title)
    ax.legend(fontsize=8)
    return ax


def plot_emergence(table: dict, axes=None, *, ks=(1, 4, 8, 16)):
    """Three scores of the same models against N: exact match of k characters (linear axis),
    per-character accuracy, and per-character log-likelihood."""
    if axes is None:
        axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)[1]
    n = table["N"]
    for k in ks:
        axes[0].plot(n, table[f"exact_{k}"], "o-", ms=3, label=f"k={k}")
    axes[0].set(title="exact match of the next k characters", ylabel="fraction of windows")
    axes[0].legend(fontsize=8)
    axes[1].plot(n, table["accuracy"], "o-", ms=3, color="C4")
    axes[1].set(title="per-character accuracy", ylabel="fraction of characters")
    axes[2].plot(n, table["log_likelihood"], "o-", ms=3, color="C5")
    axes[2].set(title="per-character log-likelihood", ylabel="nats")
    for ax in axes:
        ax.set(xscale="log", xlabel="non-embedding parameters N")
    return axes


__all__ = ["plot_emergence", "plot_fit", "plot_isoflop", "plot_loss_vs_compute"]
