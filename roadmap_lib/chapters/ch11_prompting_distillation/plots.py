"""Chapter 11's figures. Each helper takes ``ax=None``, draws a new figure when it is omitted, and
returns the axes it drew on."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np


def _ax(ax, size=(6, 3.6)):
    return ax if ax is not None else plt.subplots(figsize=size, constrained_layout=True)[1]


def plot_soft_targets(targets: dict, labels: Sequence[str], ax=None, *, context: str = ""):
    """Grouped bars: the probability of each of the top tokens (``labels``) at each temperature
    (``targets`` from :func:`analysis.soft_targets`), plus the mass of all the others."""
    ax = _ax(ax, (7, 3.6))
    temps = list(targets["probs"])
    x = np.arange(len(labels) + 1)
    width = 0.8 / len(temps)
    for i, T in enumerate(temps):
        ax.bar(x + (i - (len(temps) - 1) / 2) * width, targets["probs"][T] + [targets["rest"][T]], width,
               label=f"T = {T:g} (entropy {targets['entropy'][T]:.2f} nats)")
    ax.set_xticks(x, [repr(c)[1:-1] or " " for c in labels] + ["others"])
    ax.set_ylabel("teacher's probability")
    ax.set_xlabel("next character")
    if context:
        ax.set_title(f"after …{context!r}", fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_gradient_scale(temperatures: Sequence[float], norms: dict, ax=None):
    """Log-log: gradient norm of the soft loss against T, with and without the T² factor."""
    ax = _ax(ax)
    ax.loglog(temperatures, norms["scaled"], "o-", label="T² · KL (Hinton et al.)")
    ax.loglog(temperatures, norms["unscaled"], "s--", label="KL alone")
    ax.set_xlabel("temperature T")
    ax.set_ylabel("‖∂loss/∂student logits‖")
    ax.legend(fontsize=8)
    return ax


def plot_distillation(rows: list[dict], ax=None):
    """Validation loss of the teacher and of each student method: every seed as a dot, the mean as
    a bar (rows from :func:`distill.table`)."""
    ax = _ax(ax, (6.5, 3.6))
    for i, row in enumerate(rows):
        ax.bar(i, row["mean"], color="C0" if i == 0 else "C1", alpha=0.35)
        ax.plot([i] * len(row["losses"]), row["losses"], "k.", ms=8)
    ax.set_xticks(range(len(rows)), [f"{r['model']}\n{r['params'] / 1e3:.0f}k params" for r in rows],
                  fontsize=8)
    lo = min(min(r["losses"]) for r in rows)
    hi = max(max(r["losses"]) for r in rows)
    ax.set_ylim(lo - 0.1 * (hi - lo) - 0.05, hi + 0.1 * (hi - lo) + 0.05)
    ax.set_ylabel("validation loss (nats/char)")
    return ax


__all__ = ["plot_distillation", "plot_gradient_scale", "plot_soft_targets"]
