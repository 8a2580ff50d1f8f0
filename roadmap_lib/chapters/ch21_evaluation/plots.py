"""Chapter 21's figures. Each takes ``ax=None`` and returns the axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from roadmap_lib.evaluation import BootstrapCI


def _ax(ax):
    return ax if ax is not None else plt.subplots(figsize=(6, 3.6))[1]


def plot_model_scores(names, per_seed: dict[str, dict[str, list[float]]], cis: dict[str, dict[str, BootstrapCI]],
                      ax=None):
    """Bars: each model's pooled acc and acc_norm with its bootstrap 95% interval; dots: the seeds."""
    ax = _ax(ax)
    width = 0.38
    for j, metric in enumerate(("acc", "acc_norm")):
        for i, name in enumerate(names):
            ci = cis[name][metric]
            x = i + (j - 0.5) * width
            ax.bar(x, ci.estimate, width, color=f"C{j}", alpha=0.6, label=metric if i == 0 else None)
            ax.errorbar(x, ci.estimate, [[ci.estimate - ci.low], [ci.high - ci.estimate]], color="k", capsize=3)
            ax.plot([x] * len(per_seed[name][metric]), per_seed[name][metric], "k.", ms=4)
    ax.axhline(0.25, color="grey", ls=":", lw=1, label="chance (4 choices)")
    ax.set_xticks(range(len(names)), names, rotation=15)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("4-choice Jargon File benchmark (300 items, 3 seeds)")
    return ax


def plot_contamination(rows: list[tuple[str, list[float]]], ax=None):
    """One dot per seed, a bar at the mean, for each ``(label, per-seed acc_norm)`` row."""
    ax = _ax(ax)
    for i, (label, values) in enumerate(rows):
        ax.bar(i, sum(values) / len(values), 0.6, color="C3" if "leaked" in label else "C0", alpha=0.5)
        ax.plot([i] * len(values), values, "k.", ms=5)
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("acc_norm")
    ax.set_ylim(0.5, 1.02)
    ax.set_title("seen in training vs not")
    return ax


def plot_perturbations(labels: list[str], per_seed: list[list[float]], clean: list[float], ax=None):
    """acc_norm under each perturbation (dots: seeds), the clean score as a band."""
    ax = _ax(ax)
    lo, hi = min(clean), max(clean)
    ax.axhspan(lo, hi, color="C2", alpha=0.25, label="clean items (seed range)")
    for i, values in enumerate(per_seed):
        ax.plot([i] * len(values), values, "C0.", ms=6)
        ax.plot([i - 0.2, i + 0.2], [sum(values) / len(values)] * 2, "C0-", lw=2)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("acc_norm")
    ax.legend(fontsize=8)
    ax.set_title("perturbed contexts")
    return ax


def plot_reasoning(table: dict[str, dict[str, list[float]]], ax=None):
    """For each solver: final-answer accuracy and path accuracy (mean of seeds, dots: seeds)."""
    ax = _ax(ax)
    names = list(table)
    for j, (metric, label) in enumerate((("answer_accuracy", "final answer right"), ("path_accuracy", "path valid"))):
        for i, name in enumerate(names):
            vals = table[name][metric]
            x = i + (j - 0.5) * 0.38
            ax.bar(x, sum(vals) / len(vals), 0.38, color=f"C{j + 4}", alpha=0.7, label=label if i == 0 else None)
            ax.plot([x] * len(vals), vals, "k.", ms=4)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("share of 200 problems")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("grading the answer vs grading the path (scripted solvers)")
    return ax


def plot_judge_bias(biases, first_chosen, consistent, accuracy, ax=None):
    """The swap test as a function of a scripted first-position bias."""
    ax = _ax(ax)
    ax.plot(biases, first_chosen, "C0-o", ms=3, label="verdicts for the answer shown first (tie pairs)")
    ax.plot(biases, consistent, "C1-o", ms=3, label="same verdict in both orders (tie pairs)")
    ax.plot(biases, accuracy, "C2-o", ms=3, label="real answer chosen, one order only (real pairs)")
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_xlabel("scripted bias for the first position (nats per character)")
    ax.set_ylabel("share of pairs")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("swapping the answers exposes a position bias")
    return ax


def plot_reliability(mean_conf: torch.Tensor, acc: torch.Tensor, count: torch.Tensor, *, label: str, ax=None):
    """Reliability diagram: accuracy against mean confidence per bin (marker area ~ count)."""
    ax = _ax(ax)
    full = count > 0
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.scatter(mean_conf[full], acc[full], s=10 + 200 * count[full] / count.sum(), alpha=0.7, label=label)
    ax.plot(mean_conf[full], acc[full], alpha=0.5)
    ax.set_xlabel("mean confidence in the bin")
    ax.set_ylabel("accuracy in the bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return ax


__all__ = ["plot_contamination", "plot_judge_bias", "plot_model_scores", "plot_perturbations", "plot_reasoning",
           "plot_reliability"]
