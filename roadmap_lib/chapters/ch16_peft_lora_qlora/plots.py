"""Chapter 16's figures and tables: the quality / trainable-parameter trade-off of the sweep, one
method's training curves, and the memory of one training step."""

from __future__ import annotations

import statistics

import matplotlib.pyplot as plt
import numpy as np

from roadmap_lib.viz import moving_average

FAMILY_STYLE = {"lora": ("C0", "o"), "dora": ("C1", "s"), "qlora": ("C2", "D"),
                "prompt": ("C3", "^"), "ia3": ("C4", "v"), "full": ("k", "*")}


def family(name: str) -> str:
    return name.split()[0]


def plot_tradeoff(rows: list[dict], base_loss: float, ax=None, highlight: str | None = None):
    """Validation loss (every seed as a dot, the mean as a marker) against trainable parameters
    (log scale); LoRA ranks joined by a line per target set; the untrained model as a dashed line."""
    ax = ax or plt.gca()
    for targets, ls in (("qv", "-"), ("all", "--")):
        lora = sorted((r for r in rows if r["method"].startswith("lora") and r["method"].endswith(targets)),
                      key=lambda r: r["trainable"])
        ax.plot([r["trainable"] for r in lora], [r["mean"] for r in lora], ls, color="C0", alpha=0.6,
                label=f"LoRA r = 1, 4, 16 on {'q, v' if targets == 'qv' else 'all linear'}")
    for r in rows:
        fam = family(r["method"])
        color, marker = FAMILY_STYLE[fam]
        big = r["method"] == highlight
        ax.scatter([r["trainable"]] * len(r["losses"]), r["losses"], s=10, color=color, alpha=0.5)
        ax.errorbar(r["trainable"], r["mean"], yerr=r["std"], fmt=marker, color=color,
                    ms=11 if big else 7, mec="red" if big else color, mew=2 if big else 1, capsize=3,
                    label=r["method"] if fam in ("dora", "qlora") else None)
        if fam in ("dora", "qlora"):  # they sit on LoRA r=4 q,v: named in the legend instead
            continue
        left = r["method"].endswith(" all")  # below-left, away from the q, v points
        ax.annotate(r["method"], (r["trainable"], r["mean"]), textcoords="offset points",
                    xytext=(-6, -12) if left else (6, 4), ha="right" if left else "left", fontsize=7)
    ax.axhline(base_loss, color="grey", ls=":", label="before fine-tuning")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("validation loss on Zetan (nats / char)")
    ax.legend(fontsize=7, loc="upper right")
    return ax


def plot_curves(record: dict, method: str, ax=None, window: int = 20):
    """Training loss of ``method``'s seeds (moving average over ``window`` steps)."""
    ax = ax or plt.gca()
    runs = [r for r in record["runs"] if r["method"] == method]
    if not runs:
        raise ValueError(f"method: expected one of the sweep's methods, got {method!r}")
    for r in runs:
        ax.plot(moving_average(r["train_loss"], window), label=f"seed {r['seed']}")
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss (moving average, {window} steps)")
    ax.set_title(method)
    ax.legend(fontsize=8)
    return ax


def table_markdown(rows: list[dict], total: int) -> str:
    """The sweep as a Markdown table: trainable parameters (and % of ``total``), validation loss
    mean ± standard deviation over the seeds, and median seconds per step of the build."""
    lines = ["| method | trainable | % of model | val loss (mean ± sd) | s / step (build) |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['trainable']:,} | {100 * r['trainable'] / total:.2f} | "
                     f"{r['mean']:.3f} ± {r['std']:.3f} | {r['seconds_per_step']:.3f} |")
    return "\n".join(lines)


def plot_memory(table: dict[str, dict[str, dict]], ax=None):
    """Grouped bars: for each method (outer key) and setting (inner key), the bytes of the weights
    and the peak bytes one training step adds, stacked, in MiB."""
    ax = ax or plt.gca()
    methods = list(table)
    settings = list(next(iter(table.values())))
    width = 0.8 / len(settings)
    x = np.arange(len(methods))
    for j, s in enumerate(settings):
        w = [table[m][s]["weight_bytes"] / 2**20 for m in methods]
        p = [table[m][s]["peak_step_bytes"] / 2**20 for m in methods]
        pos = x + (j - (len(settings) - 1) / 2) * width
        ax.bar(pos, w, width, color="lightgrey", edgecolor="grey")
        ax.bar(pos, p, width, bottom=w, color=f"C{j}", label=s)
    ax.set_xticks(x, methods)
    ax.set_ylabel("MiB (grey: weights; colour: peak of one step)")
    ax.legend(fontsize=8)
    return ax


def seed_spread(rows: list[dict]) -> float:
    """The chapter's noise: the median over methods of the standard deviation across seeds."""
    return statistics.median(r["std"] for r in rows)


__all__ = ["family", "plot_curves", "plot_memory", "plot_tradeoff", "seed_spread", "table_markdown"]
