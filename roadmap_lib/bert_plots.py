"""Figures for chapter 06: the pretraining curve, masked-word predictions, fine-tuning results."""

from __future__ import annotations

import matplotlib.pyplot as plt


def plot_mlm_curve(log: list[dict], baseline: float | None = None, ax=None):
    """Training and validation masked-LM loss of a pretraining log (``roadmap_lib.training`` rows)."""
    ax = ax or plt.subplots(figsize=(6.5, 3.5))[1]
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], lw=0.6, alpha=0.5, label="train (per batch)")
    val = [r for r in log if "val_loss" in r]
    ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation")
    if baseline is not None:
        ax.axhline(baseline, ls="--", c="grey", label="unigram baseline")
    ax.set(xlabel="step", ylabel="masked-LM loss (nats)", title="Pretraining the word-level BERT")
    ax.legend()
    return ax


def plot_mask_predictions(predictions: list[tuple[str, float]], text: str, ax=None):
    """Horizontal bars: the top words predicted at the ``[MASK]`` of ``text``."""
    ax = ax or plt.subplots(figsize=(6.5, 3))[1]
    words = [w for w, _ in predictions][::-1]
    ax.barh(words, [p for _, p in predictions][::-1], color="tab:purple")
    ax.set(xlabel="probability", ylabel="predicted word", title=text if len(text) < 70 else text[:67] + "...")
    return ax


def plot_results(results: dict[str, dict[str, float]], ax=None):
    """Grouped bars: ``results[metric][model] = value`` (e.g. accuracy for pretrained vs scratch)."""
    ax = ax or plt.subplots(figsize=(6.5, 3.5))[1]
    metrics = list(results)
    models = list(next(iter(results.values())))
    width = 0.8 / len(models)
    for k, model in enumerate(models):
        xs = [i + k * width for i in range(len(metrics))]
        bars = ax.bar(xs, [results[m][model] for m in metrics], width, label=model)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(metrics))], metrics)
    ax.axhline(0.5, ls=":", c="grey")
    ax.set(ylim=(0, 1.05), ylabel="score on the test split", title="Fine-tuning on the acceptability task")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_swap_flags(flags: list[tuple[str, float]], ax=None):
    """Each word of a sentence with the tagger's probability that it was swapped."""
    ax = ax or plt.subplots(figsize=(8, 3))[1]
    ax.bar(range(len(flags)), [p for _, p in flags], color=["tab:red" if p > 0.5 else "tab:blue" for _, p in flags])
    ax.set_xticks(range(len(flags)), [w for w, _ in flags], rotation=60, ha="right", fontsize=8)
    ax.set(ylim=(0, 1), ylabel="p(swapped)", title="Which words does the tagger flag?")
    return ax


__all__ = ["plot_mask_predictions", "plot_mlm_curve", "plot_results", "plot_swap_flags"]
