"""Chapter 22's figures. Each takes ``ax=None`` and returns the axes."""

from __future__ import annotations

import matplotlib.pyplot as plt

from roadmap_lib.evaluation import BootstrapCI


def _ax(ax, size=(6, 3.4)):
    return ax if ax is not None else plt.subplots(figsize=size)[1]


def plot_system_scores(rows: list[tuple[str, BootstrapCI, list[float]]], *, metric: str, chance: float | None = None,
                       title: str = "", ax=None):
    """One bar per ``(system, bootstrap CI on the test split, per-seed scores)``: the bar and its
    95% interval from the CI, one dot per seed (a deterministic baseline has one)."""
    ax = _ax(ax)
    for i, (name, ci, seeds) in enumerate(rows):
        ax.bar(i, ci.estimate, 0.6, color=f"C{i}", alpha=0.55)
        ax.errorbar(i, ci.estimate, [[ci.estimate - ci.low], [ci.high - ci.estimate]], color="k", capsize=4)
        ax.plot([i] * len(seeds), seeds, "k.", ms=6)
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
        ax.legend(fontsize=8, loc="upper left")
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    return ax


def plot_tagged_sentence(words: list[str], gold: list[str], pred: list[str], *, title: str = "", ax=None):
    """The sentence's words in a row; gold spans underlined in green, predicted spans boxed in red."""
    ax = _ax(ax, (10, 1.4))
    x = 0.0
    for w, g, p in zip(words, gold, pred):
        width = 0.012 * (len(w) + 1)
        ax.text(x, 0.5, w, fontsize=10, va="center", family="monospace",
                bbox={"facecolor": "none", "edgecolor": "C3", "lw": 1.5} if p != "O" else None)
        if g != "O":
            ax.plot([x, x + width - 0.012], [0.2, 0.2], color="C2", lw=3)
        x += width + 0.004
    ax.set_xlim(0, max(1.0, x))
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.set_title(title or "green line: the gold intruder; red box: the tagger's prediction", fontsize=9)
    return ax


__all__ = ["plot_system_scores", "plot_tagged_sentence"]
