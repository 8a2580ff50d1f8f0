"""Chapter 24's figures: per-seed accuracies, a ViT's attention from [CLS] laid over the image,
loss curves, scenes with captions, and log-mel spectrograms."""

from __future__ import annotations

import statistics

import matplotlib.pyplot as plt
import torch


def plot_seeds(results: dict[str, list[float]], ax=None, ylabel: str = "test accuracy"):
    """One column per model: every seed as a dot, the mean as a bar with ±1 standard deviation."""
    ax = ax or plt.gca()
    for i, (name, values) in enumerate(results.items()):
        mean = statistics.mean(values)
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        ax.bar(i, mean, yerr=sd, color=f"C{i}", alpha=0.35, capsize=6, width=0.6)
        ax.plot([i] * len(values), values, "o", color=f"C{i}")
        ax.annotate(f"{mean:.3f} ± {sd:.3f}", (i, mean), textcoords="offset points", xytext=(0, 14),
                    ha="center")
    ax.set_xticks(range(len(results)), list(results))
    ax.set_ylabel(ylabel)
    return ax


def plot_cls_attention(image: torch.Tensor, maps: list[torch.Tensor], layer: int, head: int | None,
                       grid: tuple[int, int], ax=None, title: str = ""):
    """The [CLS] query's attention over the patches (``head=None``: mean over heads) of one image,
    drawn as a coloured grid over the (grey) image; ``maps`` from ``ViTEncoder.attention_maps`` for
    a batch of one. The colour scale runs from 0 to ``max(0.25, largest weight)``, the same for
    every map, so a near-uniform map (1/17 per patch) looks uniformly dark."""
    ax = ax or plt.gca()
    w = maps[layer][0]
    w = w.mean(0) if head is None else w[head]
    cls_to_patches = w[0, 1:].reshape(grid)
    h, wd = image.shape[-2:]
    ax.imshow(image.mean(0), cmap="gray", extent=(0, wd, h, 0))
    ax.imshow(cls_to_patches, cmap="magma", alpha=0.6, extent=(0, wd, h, 0), vmin=0.0,
              vmax=max(0.25, cls_to_patches.max().item()))
    ax.set_title(title or f"layer {layer}, {'mean of heads' if head is None else f'head {head}'}")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_losses(curves: dict[str, list[float]], every: int, ax=None, ylabel: str = "training loss (nats)"):
    ax = ax or plt.gca()
    for name, losses in curves.items():
        ax.plot([every * i for i in range(len(losses))], losses, label=name, alpha=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return ax


def show_scenes(images: torch.Tensor, captions: list[str], axes):
    for ax, img, cap in zip(axes, images, captions):
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1))
        ax.set_title(cap.replace(" left of", "\nleft of").replace(" right of", "\nright of"), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def show_spectrograms(features: torch.Tensor, titles: list[str], axes, hop_s: float = 0.01):
    """log-mel features (n, n_mels, frames), low frequencies at the bottom."""
    for ax, f, t in zip(axes, features, titles):
        ax.imshow(f, origin="lower", aspect="auto", cmap="viridis", extent=(0, f.shape[-1] * hop_s, 0, f.shape[0]))
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("mel band")
    return axes


def show_digit_grid(images: torch.Tensor, n_rows: int, ax=None, row_labels=None, title: str = ""):
    """(n_rows · n_cols, 1, 8, 8) images in [0, 1], row-major, drawn as one grey mosaic with a
    one-pixel gap; ``row_labels`` name the rows."""
    ax = ax or plt.gca()
    n = images.shape[0]
    if n % n_rows:
        raise ValueError(f"n_rows: expected a divisor of the number of images {n}, got {n_rows}")
    n_cols, h, w = n // n_rows, images.shape[-2], images.shape[-1]
    canvas = torch.ones((h + 1) * n_rows + 1, (w + 1) * n_cols + 1)
    for i, img in enumerate(images[:, 0]):
        r, c = divmod(i, n_cols)
        canvas[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = 1 - img
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([1 + r * (h + 1) + h / 2 - 0.5 for r in range(n_rows)], row_labels or [""] * n_rows)
    ax.set_title(title)
    return ax


def plot_guidance(scales: list[float], accuracy: dict[str, list[list[float]]], ax=None,
                  reference: dict[str, float] | None = None, chance: float = 0.1):
    """Accuracy against the guidance scale, one line per judge: every seed as a dot, the mean as a
    line with ±1 standard deviation bars; ``reference`` (one value per judge, e.g. null-class samples)
    as a dashed line of the judge's colour, ``chance`` as a grey dotted line."""
    ax = ax or plt.gca()
    if any(len(rows) != len(scales) for rows in accuracy.values()):
        raise ValueError(f"accuracy: expected one row per scale ({len(scales)}), got "
                         f"{ {k: len(v) for k, v in accuracy.items()} }")
    for i, (name, rows) in enumerate(accuracy.items()):
        means = [statistics.mean(r) for r in rows]
        sds = [statistics.stdev(r) if len(r) > 1 else 0.0 for r in rows]
        ax.errorbar(scales, means, yerr=sds, color=f"C{i}", marker="o", capsize=4, label=f"{name} (mean ± sd)")
        for w, r in zip(scales, rows):
            ax.plot([w] * len(r), r, ".", color=f"C{i}", alpha=0.5)
        if reference and name in reference:
            ax.axhline(reference[name], color=f"C{i}", ls="--", lw=1, label=f"{name}: null-class samples")
    ax.axhline(chance, color="grey", ls=":", label="chance")
    ax.set_xlabel("guidance scale w")
    ax.set_ylabel("accuracy on samples asked for a class")
    ax.legend(fontsize=8)
    return ax
