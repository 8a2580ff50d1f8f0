"""Chapter 23's figures and tables. Plot helpers take ``ax=None`` and return the axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from roadmap_lib.longcontext import plot_needle_grid
from roadmap_lib.rope import RoPEConfig, rope_angles

METHOD_COLORS = {"rope": "C0", "linear": "C1", "ntk": "C2", "yarn": "C3"}
METHOD_NAMES = {"rope": "plain RoPE", "linear": "PI (linear)", "ntk": "NTK-aware", "yarn": "YaRN"}


def _ax(ax):
    return plt.subplots(figsize=(6, 3.5))[1] if ax is None else ax


def seed_stats(seeds: dict, query_set: str, method: str, metric: str) -> tuple[float, float, float]:
    """``(mean, min, max)`` of a retrieval metric over the recorded seeds."""
    v = [s[query_set][method][metric] for s in seeds.values()]
    return float(np.mean(v)), float(min(v)), float(max(v))


def retrieval_table(seeds: dict, metric: str = "recall@1") -> str:
    """Markdown: rows = methods, columns = query sets, cells = mean [min, max] over seeds."""
    first = next(iter(seeds.values()))
    sets = list(first)
    methods = [m for m in first[sets[0]] if not m.startswith("hnsw")]
    lines = [f"| {metric} | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
    for m in methods:
        cells = []
        for q in sets:
            mean, lo, hi = seed_stats(seeds, q, m, metric)
            cells.append(f"{mean:.3f} [{lo:.3f}, {hi:.3f}]")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_retrieval(seeds: dict, metric: str = "recall@1", ax=None):
    """Grouped bars: a metric by method and query set, seed mean with min-max whiskers."""
    ax = _ax(ax)
    first = next(iter(seeds.values()))
    sets = list(first)
    methods = [m for m in first[sets[0]] if not m.startswith("hnsw")]
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        stats = [seed_stats(seeds, q, m, metric) for q in sets]
        x = np.arange(len(sets)) + j * width
        mean = [s[0] for s in stats]
        err = [[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]]
        ax.bar(x, mean, width, yerr=err, capsize=2, label=m)
    ax.set_xticks(np.arange(len(sets)) + 0.4 - width / 2, sets)
    ax.set_ylabel(f"{metric} (200 queries)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncol=2)
    return ax


def plot_hnsw(ef: list[int], overlap: list[float], ax=None):
    ax = _ax(ax)
    ax.plot(ef, overlap, "o-")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("HNSW ef_search (candidates kept during the walk)")
    ax.set_ylabel("top-10 overlap with exact search")
    ax.axhline(1.0, color="gray", lw=0.5)
    return ax


def plot_speeds(dim: int = 16, factor: float = 4.0, train_len: int = 64, ax=None):
    """Each pair's rotation speed after rescaling, divided by the original: 1 = kept, 1/factor = interpolated."""
    ax = _ax(ax)
    base = rope_angles(torch.tensor([1.0]), RoPEConfig(dim))[0]
    for m in ("linear", "ntk", "yarn"):
        extra = {"original_max_position": train_len} if m == "yarn" else {}
        cfg = RoPEConfig(dim, scaling=m, factor=factor, **extra)
        ratio = rope_angles(torch.tensor([1.0]), cfg)[0] / base
        ax.plot(ratio.numpy(), "o-", color=METHOD_COLORS[m], label=METHOD_NAMES[m])
    ax.set_yscale("log", base=2)
    ax.set_xlabel("pair index i (fast → slow)")
    ax.set_ylabel("speed / original speed")
    ax.set_title(f"head dim {dim}, factor {factor:g}, trained length {train_len}", fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_loss_curves(record: dict, factor: int, methods=None, ax=None):
    """Loss by position (bins) at ``factor`` × the training length: seed mean, min-max band."""
    ax = _ax(ax)
    exp = record["experiment"]
    width = len(next(iter(record["curves"].values()))["rope"]["1"])
    bin_w = exp["train_len"] // width
    for m in methods or METHOD_COLORS:
        c = np.array([s[m][str(factor)] for s in record["curves"].values()])
        x = (np.arange(c.shape[1]) + 0.5) * bin_w
        ax.plot(x, c.mean(0), color=METHOD_COLORS[m], label=METHOD_NAMES[m])
        ax.fill_between(x, c.min(0), c.max(0), color=METHOD_COLORS[m], alpha=0.2)
    ax.axvline(exp["train_len"], color="gray", ls="--", lw=1)
    ax.set_xlabel("position in the window (characters)")
    ax.set_ylabel("loss (nats/char)")
    ax.set_title(f"read at {factor}x the training length ({len(record['curves'])} seeds)", fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_memory(lengths, naive, chunked, ax=None):
    ax = _ax(ax)
    ax.loglog(lengths, np.array(naive) / 2**20, "o-", label="full attention (L×L scores)")
    ax.loglog(lengths, np.array(chunked) / 2**20, "s-", label="chunked (block×L scores)")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("peak tensor memory (MiB)")
    ax.legend(fontsize=8)
    return ax


def plot_needle(record: dict, methods=None, axes=None):
    """One heatmap per method: the needle found rate by window length and depth, mean over the
    recorded seeds (a ``23-needle`` results record)."""
    from roadmap_lib.chapters.ch23_long_context_rag.needle import found_array

    methods = list(methods or record["seeds"]["0"]["grid"]["found"])
    axes = plt.subplots(1, len(methods), figsize=(3.3 * len(methods), 2.9), sharey=True)[1] if axes is None else axes
    exp = record["experiment"]
    for ax, m in zip(np.atleast_1d(axes), methods):
        plot_needle_grid(found_array(record, m).mean(0), exp["lengths"], exp["depths"], train_len=exp["train_len"],
                         title=f"{METHOD_NAMES.get(m, m)}", ax=ax)
        if ax is not np.atleast_1d(axes)[0]:
            ax.set_ylabel("")
    return axes
