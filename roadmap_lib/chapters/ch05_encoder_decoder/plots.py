"""Figures for chapter 05: cross-attention maps of the Zetan translator."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def plot_cross_attention(weights: torch.Tensor, source: list[str], target: list[str], ax=None,
                         title: str = "cross-attention"):
    """One map ``(T, S)``: row t = where the decoder looks in the source to predict target word t."""
    if weights.ndim != 2 or weights.shape != (len(target), len(source)):
        raise ValueError(f"weights: expected ({len(target)}, {len(source)}) for the given words, "
                         f"got {tuple(weights.shape)}")
    ax = ax or plt.subplots(figsize=(0.45 * len(source) + 2, 0.4 * len(target) + 1.5))[1]
    im = ax.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=60, ha="right")
    ax.set_yticks(range(len(target)), target)
    ax.set(xlabel="English source word", ylabel="Zetan word being predicted", title=title)
    plt.colorbar(im, ax=ax, fraction=0.04, label="attention weight")
    return ax


__all__ = ["plot_cross_attention"]
