"""Plotting helpers every chapter shares. Each takes ``ax=None`` (a new figure when omitted) and
returns the axes it drew on, so that a chapter can place several plots in one figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start), for noisy loss curves."""
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window: expected a positive int, got {window!r}")
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_training_log(log: list[dict], ax=None, *, title: str = "", ylabel: str = "loss (nats)",
                      smooth: int | None = None, baseline: tuple[float, str] | None = None,
                      yscale: str = "linear", color: str = "tab:blue", label: str = ""):
    """The log that :func:`roadmap_lib.training.train` returns, drawn the same way everywhere.

    ``log`` rows have ``step`` and ``loss`` (one training batch) and, at evaluations, ``val_loss``.
    The per-batch training loss is a thin line; with ``smooth`` its trailing ``smooth``-step mean is
    drawn over it; validation losses are dots. ``baseline = (value, label)`` draws a reference line.
    ``label`` prefixes the legend entries (several runs on one axes).
    """
    if not log or any("step" not in r or "loss" not in r for r in log):
        raise ValueError("log: expected a non-empty list of rows with 'step' and 'loss' "
                         "(the log of roadmap_lib.training.train)")
    ax = ax if ax is not None else plt.subplots(figsize=(6.5, 3.5))[1]
    prefix = f"{label}: " if label else ""
    steps, loss = [r["step"] for r in log], [r["loss"] for r in log]
    ax.plot(steps, loss, color=color, lw=0.7, alpha=0.3 if smooth else 0.6,
            label=f"{prefix}train (one batch)")
    if smooth:
        ax.plot(steps, moving_average(loss, smooth), color=color, lw=1.2,
                label=f"{prefix}train ({smooth}-step mean)")
    val = [r for r in log if "val_loss" in r]
    if val:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", ms=3,
                color="tab:orange" if not label else color, label=f"{prefix}validation")
    if baseline is not None:
        ax.axhline(baseline[0], ls="--", c="grey", label=baseline[1])
    ax.set(xlabel="optimiser step", ylabel=ylabel, yscale=yscale, title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


__all__ = ["moving_average", "plot_training_log"]
