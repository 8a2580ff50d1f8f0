"""Figures of chapter 04: masks, attention maps by head, cost against sequence length, loss curves.

Each function draws on the axes given (``ax=None`` / ``axes=None``: a new figure) and returns them
(an array of axes for the multi-panel figures), so a chapter can place several plots in one figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from roadmap_lib.scaling import fit_power_law
from roadmap_lib.viz import moving_average


def plot_masks(masks: dict[str, torch.Tensor], title: str = "Masks: who may attend to whom",
               axes=None):
    """One panel per boolean (Lq, Lk) mask (``len(masks)`` axes); dark = may attend."""
    axes = axes if axes is not None else plt.subplots(
        1, len(masks), figsize=(3.0 * len(masks), 3.6), squeeze=False, layout="constrained")[1][0]
    if len(axes) != len(masks):
        raise ValueError(f"axes: expected one per mask ({len(masks)}), got {len(axes)}")
    for ax, (name, mask) in zip(axes, masks.items()):
        ax.imshow(mask.float(), cmap="Greys", vmin=0, vmax=1)
        ax.set_title(name)
        ax.set_xlabel("key position")
        ax.set_ylabel("query position")
    axes[0].figure.suptitle(title)
    return axes


def plot_attention_heads(weights: torch.Tensor, title: str = "Attention weights by head", axes=None):
    """weights: (heads, Lq, Lk), one heat map per head (``heads`` axes)."""
    heads = weights.shape[0]
    axes = axes if axes is not None else plt.subplots(
        1, heads, figsize=(3.2 * heads, 3.4), squeeze=False, layout="constrained")[1][0]
    if len(axes) != heads:
        raise ValueError(f"axes: expected one per head ({heads}), got {len(axes)}")
    fig = axes[0].figure
    lq, lk = weights.shape[1:]
    for h, ax in enumerate(axes):
        im = ax.imshow(weights[h].detach(), cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(0, lk, max(1, lk // 6)))
        ax.set_yticks(range(0, lq, max(1, lq // 6)))
        ax.set_title(f"head {h}")
        ax.set_xlabel("key")
        if h == 0:
            ax.set_ylabel("query")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="weight")
    fig.suptitle(title)
    return axes


def plot_scaling(results: dict[str, dict[str, list[float]]], fit_from: int = 0, axes=None):
    """Time and peak memory against sequence length on log-log axes, with fitted exponents.

    ``fit_from``: index of the first length used in the fits (small lengths are overhead-bound).
    Two axes: time, memory.
    """
    own_figure = axes is None
    axes = axes if axes is not None else plt.subplots(1, 2, figsize=(11, 4))[1]
    if len(axes) != 2:
        raise ValueError(f"axes: expected 2 axes (time, memory), got {len(axes)}")
    for (key, label), ax in zip((("seconds", "time per call (s)"), ("bytes", "peak memory (MiB)")),
                                axes):
        for name, r in results.items():
            x, y = r["length"], r[key]
            p, c = fit_power_law(x[fit_from:], y[fit_from:])
            scale = 2**-20 if key == "bytes" else 1.0
            line, = ax.loglog(x, [v * scale for v in y], "o", label=f"{name}: ∝ L^{p:.2f}")
            ax.loglog(x[fit_from:], [c * n**p * scale for n in x[fit_from:]], "--",
                      color=line.get_color(), alpha=0.7)
        ax.set_xticks(x, [str(n) for n in x], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel("sequence length L")
        ax.set_ylabel(label)
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title("Attention time")
    axes[1].set_title("Attention memory (tensors alive at the peak)")
    if own_figure:
        axes[0].figure.tight_layout()
    return axes


def plot_loss_curves(curves: dict[str, list[float]], title: str, *, window: int = 10,
                     reference: tuple[float, str] | None = None, ax=None):
    """Smoothed training-loss curves; ``reference`` = (value, label) draws a horizontal line."""
    own_figure = ax is None
    ax = ax if ax is not None else plt.subplots(figsize=(7, 4))[1]
    for name, losses in curves.items():
        ax.plot(range(1, len(losses) + 1), moving_average(losses, window), label=name)
    if reference is not None:
        ax.axhline(reference[0], color="grey", ls=":", label=reference[1])
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss (nats, moving average of {window})")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    if own_figure:
        ax.figure.tight_layout()
    return ax


def plot_norms(x: torch.Tensor, normed: dict[str, torch.Tensor], title: str, ax=None):
    """A vector before and after each normalisation, as bars side by side."""
    own_figure = ax is None
    ax = ax if ax is not None else plt.subplots(figsize=(7, 3.5))[1]
    series = {"input": x, **normed}
    width = 0.8 / len(series)
    idx = torch.arange(x.numel(), dtype=torch.float32)
    for i, (name, y) in enumerate(series.items()):
        ax.bar(idx + (i - (len(series) - 1) / 2) * width, y.detach(), width, label=name)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("feature")
    ax.set_ylabel("value")
    ax.set_title(title)
    ax.legend()
    if own_figure:
        ax.figure.tight_layout()
    return ax


__all__ = ["plot_attention_heads", "plot_grad_norms", "plot_loss_curves", "plot_masks", "plot_norms",
           "plot_scaling"]


def plot_activation_seeds(losses: dict[str, list[float]], gated: tuple[str, ...] = ("swiglu", "geglu"), ax=None):
    """Validation loss of each activation: one dot per seed, a bar at the mean (gated in orange)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.2))
    for i, (name, values) in enumerate(losses.items()):
        color = "tab:orange" if name in gated else "tab:blue"
        mean = sum(values) / len(values)
        ax.hlines(mean, i - 0.3, i + 0.3, color=color, lw=2.5)
        ax.scatter([i] * len(values), values, color=color, s=22, zorder=3, alpha=0.8)
    ax.set_xticks(range(len(losses)), list(losses))
    ax.set_ylabel("validation loss (nats)")
    ax.set_title("Activations at equal parameters: seeds (dots) and mean (bar)")
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_grad_norms(norms: dict[str, torch.Tensor], ax=None):
    """Per-block gradient norms at initialisation: ``norms[label]`` is (seeds, blocks); every seed
    drawn thin, the mean thick."""
    own_figure = ax is None
    ax = ax if ax is not None else plt.subplots(figsize=(6.5, 3.8))[1]
    for k, (label, values) in enumerate(norms.items()):
        layers = range(1, values.shape[1] + 1)
        for row in values:
            ax.plot(layers, row, color=f"C{k}", alpha=0.3, lw=1)
        ax.plot(layers, values.mean(0), color=f"C{k}", marker="o", lw=2, label=f"{label} (mean of {len(values)} seeds)")
    ax.set_xlabel("block (1 = next to the embeddings)")
    ax.set_ylabel(r"$\|\nabla W_2\|$ at initialisation")
    ax.set_ylim(0, None)
    ax.legend()
    ax.grid(alpha=0.3)
    if own_figure:
        ax.figure.tight_layout()
    return ax
