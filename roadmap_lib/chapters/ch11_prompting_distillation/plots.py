"""Chapter 11's figures. Each helper takes ``ax=None``, draws a new figure when it is omitted, and
returns the axes it drew on."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter, ScalarFormatter


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


__all__ = ["plot_compute", "plot_cot_accuracy", "plot_distillation", "plot_gradient_scale", "plot_samples_curve",
           "plot_shots", "plot_soft_targets"]


def plot_cot_accuracy(n_digits: Sequence[int], curves: dict[str, list[list[float]]], ax=None, *,
                      chance: float = 0.1):
    """Accuracy against the number of digits, one line per method: ``curves[label]`` is
    ``[seed][length] -> accuracy``; the line is the mean over seeds, the band the min-max."""
    ax = _ax(ax)
    for label, per_seed in curves.items():
        a = np.asarray(per_seed, dtype=float)
        line, = ax.plot(n_digits, a.mean(0), marker="o", label=f"{label} ({len(a)} seeds)")
        ax.fill_between(n_digits, a.min(0), a.max(0), color=line.get_color(), alpha=0.2)
    ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
    ax.set_xlabel("digits in the problem")
    ax.set_ylabel("exact-answer accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    return ax


def plot_samples_curve(ks: Sequence[int], curves: dict[str, list[list[float]]], ax=None, *,
                       baseline: float | None = None):
    """Accuracy against the number of sampled chains k, one line per way of choosing an answer
    (``curves[label]`` is ``[seed][k] -> accuracy``, drawn as mean and min-max band)."""
    ax = _ax(ax)
    for label, per_seed in curves.items():
        a = np.asarray(per_seed, dtype=float)
        line, = ax.plot(ks, a.mean(0), marker="o", label=label)
        ax.fill_between(ks, a.min(0), a.max(0), color=line.get_color(), alpha=0.2)
    if baseline is not None:
        ax.axhline(baseline, color="grey", ls="--", lw=1, label="greedy chain (mean)")
    ax.set_xlabel("sampled chains k")
    ax.set_ylabel("accuracy")
    ax.set_xticks(list(ks))
    ax.legend(fontsize=8)
    return ax


def plot_shots(shots: Sequence[int], curves: dict[str, list[list[float]]], ax=None, *,
               ideal: Sequence[float] | None = None, chance: float | None = None):
    """Accuracy against the number of demonstrations in the prompt, one line per condition
    (``curves[label]`` is ``[seed][shots] -> accuracy``, ``None`` where not measured; mean and
    min-max band), with the ideal learner's accuracy as a dashed line."""
    ax = _ax(ax)
    for label, per_seed in curves.items():
        a = np.asarray([[np.nan if v is None else v for v in row] for row in per_seed], dtype=float)
        keep = ~np.isnan(a).any(0)  # settings measured for every seed
        x, a = np.asarray(shots)[keep], a[:, keep]
        line, = ax.plot(x, a.mean(0), marker="o", label=f"{label} ({len(a)} seeds)")
        ax.fill_between(x, a.min(0), a.max(0), color=line.get_color(), alpha=0.2)
    if ideal is not None:
        ax.plot(shots, ideal, "k--", lw=1, label="ideal learner")
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", lw=1, label="one family's share")
    ax.set_xlabel("demonstrations in the prompt (shots)")
    ax.set_ylabel("exact-match accuracy")
    ax.set_xticks(list(shots))
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    return ax


def plot_compute(points: dict[str, tuple[list[float], list[list[float]]]], ax=None, *,
                 greedy: tuple[float, float] | None = None):
    """Accuracy against compute (generated tokens per problem, log scale), one line per method:
    ``points[label] = (tokens, [seed][setting] -> accuracy)`` drawn as the mean with a min-max
    band; ``greedy`` is one ``(tokens, accuracy)`` point."""
    ax = _ax(ax, (6.5, 3.8))
    for label, (tokens, per_seed) in points.items():
        a = np.asarray(per_seed, dtype=float)
        line, = ax.plot(tokens, a.mean(0), marker="o", label=label)
        ax.fill_between(tokens, a.min(0), a.max(0), color=line.get_color(), alpha=0.2)
    if greedy is not None:
        ax.plot(*greedy, "k*", ms=12, label="greedy chain")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("generated tokens per problem (mean, log scale)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    return ax
