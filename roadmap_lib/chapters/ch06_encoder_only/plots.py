"""Figures for chapter 06: the pretraining curve, masked-word predictions, fine-tuning results."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt


def plot_mask_predictions(predictions: list[tuple[str, float]], text: str, ax=None):
    """Horizontal bars: the top words predicted at the ``[MASK]`` of ``text``."""
    ax = ax or plt.subplots(figsize=(6.5, 3))[1]
    words = [w for w, _ in predictions][::-1]
    ax.barh(words, [p for _, p in predictions][::-1], color="tab:purple")
    ax.set(xlabel="probability", ylabel="predicted word", title=text if len(text) < 70 else text[:67] + "...")
    return ax


def plot_results(results: dict[str, dict[str, float]], chance: float | None = None,
                 title: str = "Fine-tuning on the intruder task", ax=None):
    """Grouped bars: ``results[metric][model] = value`` (e.g. accuracy for pretrained vs scratch),
    with a dotted line at ``chance`` if given."""
    ax = ax or plt.subplots(figsize=(6.5, 3.5))[1]
    metrics = list(results)
    models = list(next(iter(results.values())))
    width = 0.8 / len(models)
    for k, model in enumerate(models):
        xs = [i + k * width for i in range(len(metrics))]
        bars = ax.bar(xs, [results[m][model] for m in metrics], width, label=model)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(metrics))], metrics)
    if chance is not None:
        ax.axhline(chance, ls=":", c="grey")
    top = max(v for row in results.values() for v in row.values())
    ax.set(ylim=(0, min(1.05, 1.3 * top + 0.05)), ylabel="score on the test split",
           title=title)
    ax.legend(loc="upper right", fontsize=8)
    return ax


def plot_seed_bars(values: dict[str, list[float]], ylabel: str, title: str, ax=None):
    """One bar per model at the mean of its runs (printed above the highest run), each run a black dot."""
    ax = ax or plt.subplots(figsize=(6.5, 3.5))[1]
    for i, (name, runs) in enumerate(values.items()):
        mean = sum(runs) / len(runs)
        ax.bar(i, mean, 0.6, color=f"C{i}", alpha=0.8)
        ax.annotate(f"{mean:.2f}", (i, max(runs)), xytext=(0, 5), textcoords="offset points", ha="center", fontsize=8)
        ax.scatter([i] * len(runs), runs, color="black", s=12, zorder=3, label="one run" if i == 0 else None)
    ax.set_xticks(range(len(values)), list(values))
    top = max(v for runs in values.values() for v in runs)
    ax.set(ylim=(0, min(1.05, 1.3 * top + 0.05)), ylabel=ylabel, title=title)
    ax.legend(loc="upper right", fontsize=8)
    return ax


def plot_word_scores(scores: list[tuple[str, float]], ylabel: str, title: str, threshold: float | None = None,
                     highlight: int | None = None, ax=None):
    """One bar per word of a sentence (``(word, score)`` pairs); bars above ``threshold`` are red and
    the word at index ``highlight`` (e.g. the true intruder) is underlined with a star."""
    ax = ax or plt.subplots(figsize=(8, 3))[1]
    values = [0.0 if math.isnan(v) else v for _, v in scores]  # nan ([UNK]) drawn as 0
    colours = ["tab:red" if threshold is not None and v > threshold else "tab:blue" for v in values]
    ax.bar(range(len(scores)), values, color=colours)
    labels = [w + (" [UNK]" if math.isnan(v) else "") + (" *" if k == highlight else "") for k, (w, v) in enumerate(scores)]
    ax.set_xticks(range(len(scores)), labels, rotation=60, ha="right", fontsize=8)
    if threshold is not None:
        ax.axhline(threshold, ls=":", c="grey")
    ax.set(ylabel=ylabel, title=title)
    return ax


def plot_learning_curves(lines: dict[str, dict[int, list[float]]], ylabel: str, title: str,
                         chance: float | None = None, ax=None):
    """Score against the number of labelled sentences (log x). ``lines[name][n]`` holds one value
    per seed: the line is their mean, the shaded band their range."""
    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    for name, values in lines.items():
        sizes = sorted(values)
        mean = [sum(values[n]) / len(values[n]) for n in sizes]
        (line,) = ax.plot(sizes, mean, "o-", label=f"{name} (mean of {len(values[sizes[0]])} seeds)")
        ax.fill_between(sizes, [min(values[n]) for n in sizes], [max(values[n]) for n in sizes],
                        color=line.get_color(), alpha=0.2, lw=0)
    if chance is not None:
        ax.axhline(chance, ls=":", c="grey", label="chance")
    ax.set_xscale("log")
    sizes = sorted({n for values in lines.values() for n in values})
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set(xlabel="labelled training sentences", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return ax


__all__ = ["plot_learning_curves", "plot_mask_predictions", "plot_results", "plot_seed_bars", "plot_word_scores"]
