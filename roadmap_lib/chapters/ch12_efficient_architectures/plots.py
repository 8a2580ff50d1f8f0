"""Chapter 12's figures. Every function takes ``ax=None`` (or draws its own figure) and returns the axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

from roadmap_lib.efficient.sparse import SparsePattern


def plot_pattern(pattern: SparsePattern, L: int, ax=None, title: str | None = None):
    """The token mask (dark = may attend) over the block layout (shaded = computed blocks)."""
    ax = ax or plt.subplots(figsize=(3.2, 3.2))[1]
    mask = pattern.mask(L).float().numpy()
    layout = pattern.layout(L).float().numpy()
    blocks = np.kron(layout, np.ones((pattern.block, pattern.block)))
    ax.imshow(0.25 * blocks + 0.75 * mask, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    computed = layout.sum() * pattern.block**2
    ax.set_title(title or f"{pattern.kind}: {int(mask.sum())} pairs, {int(computed)} computed", fontsize=9)
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    return ax


def plot_patterns(patterns: dict[str, SparsePattern], L: int):
    fig, axes = plt.subplots(1, len(patterns), figsize=(3.1 * len(patterns), 3.3))
    for ax, (name, p) in zip(np.atleast_1d(axes), patterns.items()):
        mask = p.mask(L)
        frac = float(p.layout(L).float().mean())
        plot_pattern(p, L, ax, title=f"{name}\n{int(mask.sum())} pairs; {100 * frac:.0f}% of blocks computed")
    fig.tight_layout()
    return axes


def plot_scaling(bench: dict, axes=None):
    """Time per token and peak memory against L, log-log, with the fitted slopes in the legend."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 6))
    markers = "os^vD<>px"
    for i, (name, times) in enumerate(bench["time_s"].items()):
        Ls = [int(L) for L in times]
        slope = bench["slopes"].get(name, {})
        t_label = f"{name} (slope {slope['time']:.2f})" if slope else name
        m_label = f"{name} (slope {slope['memory']:.2f})" if slope else name
        axes[0].loglog(Ls, [1e6 * times[str(L)] / L for L in Ls], marker=markers[i % 9], label=t_label)
        mem = bench["peak_bytes"].get(name, {})
        Lm = [int(L) for L in mem]
        axes[1].loglog(Lm, [mem[str(L)] / 2**20 for L in Lm], marker=markers[i % 9], label=m_label)
    axes[0].set_ylabel("time per token (µs)")
    axes[1].set_ylabel("peak memory of one call (MiB)")
    lengths = [int(L) for L in bench.get("lengths", [])]
    for ax, what in zip(axes, ("time", "memory")):
        ax.set_xlabel("sequence length L")
        if lengths:
            ax.set_xticks(lengths, [str(L) for L in lengths])
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=7, title=f"slope of total {what} vs L", title_fontsize=7, ncol=2,
                  loc="upper center", bbox_to_anchor=(0.5, -0.14))
        ax.grid(True, which="both", alpha=0.3)
    plt.tight_layout()
    return axes


def plot_decode_state(bench: dict, ax=None):
    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    Ls = [int(L) for L in bench["decode_state_bytes"]]
    names = list(bench["decode_state_bytes"][str(Ls[0])])
    for name in names:
        ax.loglog(Ls, [bench["decode_state_bytes"][str(L)][name] / 2**10 for L in Ls], marker="o", label=name)
    ax.set_xlabel("tokens generated so far")
    ax.set_ylabel("state kept per layer (KiB)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return ax


LABELS = {"text_loss": "held-out text loss (nats/char)", "recall_acc": "recall accuracy, all queries",
          "recall_first_acc": "recall accuracy, first queries", "recall_repeat_acc": "recall, repeated queries"}


def plot_sweep(summary: dict, metrics=("text_loss", "recall_acc", "recall_first_acc"), axes=None):
    """Each seed as a dot, the mean as a bar, one panel per metric; chance (0.1) dotted on accuracies."""
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8))
    names = list(summary)
    x = np.arange(len(names))
    for ax, key in zip(np.atleast_1d(axes), metrics):
        ax.bar(x, [summary[n][key]["mean"] for n in names], color="#c6dbef", edgecolor="#3182bd")
        for i, n in enumerate(names):
            vals = summary[n][key]["values"]
            ax.scatter([i] * len(vals), vals, color="#08519c", zorder=3, s=14)
        ax.set_xticks(x, names, rotation=30)
        ax.set_ylabel(LABELS.get(key, key))
        if key == "text_loss":
            ax.set_ylim(min(summary[n][key]["min"] for n in names) - 0.15,
                        max(summary[n][key]["max"] for n in names) + 0.1)
        else:
            ax.axhline(0.1, color="grey", ls=":", lw=1)
            ax.set_ylim(0, 1.05)
    plt.tight_layout()
    return axes


def plot_favor(features: list[int], errors: dict[int, list[float]], ax=None):
    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    for m in features:
        ax.scatter([m] * len(errors[m]), errors[m], color="#3182bd", s=12)
    ax.loglog(features, [np.mean(errors[m]) for m in features], color="#08519c", label="mean over seeds")
    ax.set_xlabel("random features m")
    ax.set_ylabel("relative error vs softmax attention")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return ax


def plot_kernels(kernels, ax=None, n: int = 4):
    """The first ``n`` channels' S4D convolution kernels."""
    ax = ax or plt.subplots(figsize=(6, 3))[1]
    for h in range(min(n, kernels.shape[0])):
        ax.plot(kernels[h].detach().numpy(), lw=1, label=f"channel {h}")
    ax.set_xlabel("lag l")
    ax.set_ylabel("K_l")
    ax.legend(fontsize=7)
    return ax


def plot_utilisation(util: list[list[float]], ax=None):
    ax = ax or plt.subplots(figsize=(5, 3))[1]
    util = np.array(util)
    width = 0.8 / len(util)
    for i, row in enumerate(util):
        ax.bar(np.arange(len(row)) + i * width, row, width=width, label=f"layer {i}")
    ax.axhline(1 / util.shape[1], color="grey", ls=":", lw=1, label="balanced")
    ax.set_xlabel("expert")
    ax.set_ylabel("fraction of tokens")
    ax.legend(fontsize=7)
    return ax


__all__ = ["plot_decode_state", "plot_favor", "plot_kernels", "plot_pattern", "plot_patterns", "plot_scaling",
           "plot_sweep", "plot_utilisation"]
