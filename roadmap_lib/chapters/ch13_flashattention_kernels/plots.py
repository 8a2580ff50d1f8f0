"""Figures and tables of chapter 13 (FlashAttention): the online softmax tile by tile, HBM traffic
against sequence length, and the GPU benchmark results written by ``benchmarks/bench_flash.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from roadmap_lib import DATA_DIR
from roadmap_lib.chapters.ch13_flashattention_kernels.io_complexity import (
    flash_attention_traffic,
    naive_attention_traffic,
)

#: Where ``benchmarks/bench_flash.py`` writes ``flash_<device>.json``.
RESULTS_DIR = DATA_DIR.parent / "benchmarks" / "results"
IMPLS = ("triton", "sdpa_flash", "sdpa_cudnn", "sdpa_math")
PASSES = ("fwd", "bwd", "fwd+bwd")


def plot_online_softmax_step(x: torch.Tensor, block_size: int, step: int, axes=None):
    """Two panels (two axes) for one row ``x`` of scores after ``step`` tiles (1-based) of the online softmax.

    Left: the scores, the tiles seen so far in colour, the running max ``m``. Right: what the
    streaming state can already say, ``exp(x_j − m)/l`` for the seen entries, against the final
    softmax; the seen entries' estimates shrink as later tiles add to ``l``.
    """
    from roadmap_lib.kernels.reference import online_softmax_states

    if x.ndim != 1:
        raise ValueError(f"x: expected one row of scores (1-D), got shape {tuple(x.shape)}")
    states = online_softmax_states(x, block_size)
    if not 1 <= step <= len(states):
        raise ValueError(f"step: expected 1 to {len(states)} (the number of tiles), got {step}")
    m, l = (float(t) for t in states[step - 1])
    seen = min(step * block_size, len(x))
    idx = torch.arange(len(x))
    own_figure = axes is None
    axes = axes if axes is not None else plt.subplots(1, 2, figsize=(11, 3.6))[1]
    ax0, ax1 = axes
    colours = ["tab:blue" if j < seen else "lightgrey" for j in range(len(x))]
    ax0.bar(idx, x, color=colours)
    ax0.axhline(m, color="tab:red", ls="--", label=f"running max m = {m:.2f}")
    for b in range(block_size, len(x), block_size):
        ax0.axvline(b - 0.5, color="k", lw=0.5, alpha=0.4)
    ax0.set(xlabel="key position j", ylabel="score $s_j$", title=f"tiles seen: {step} of {len(states)}")
    ax0.legend(loc="lower right", fontsize=8)

    final = torch.softmax(x.double(), 0)
    estimate = torch.exp(x[:seen].double() - m) / l
    ax1.bar(idx, final, color="lightgrey", label="final softmax")
    ax1.bar(idx[:seen], estimate, color="tab:blue", alpha=0.8, label="exp($s_j$ − m) / l so far")
    ax1.set(xlabel="key position j", ylabel="weight", title=f"running sum l = {l:.3f}")
    ax1.legend(loc="upper right", fontsize=8)
    if own_figure:
        ax0.figure.tight_layout()
    return axes


def plot_hbm_traffic(ns, d: int = 64, block_m: int = 128, block_n: int = 64, bytes_per_element: int = 2,
                     ax=None):
    """HBM megabytes of one head's forward, naive against tiled (and tiled causal), against N."""
    naive = [naive_attention_traffic(1, 1, n, n, d, bytes_per_element).total / 1e6 for n in ns]
    flash = [flash_attention_traffic(1, 1, n, n, d, block_m=block_m, block_n=block_n,
                                     bytes_per_element=bytes_per_element).total / 1e6 for n in ns]
    causal = [flash_attention_traffic(1, 1, n, n, d, block_m=block_m, block_n=block_n, causal=True,
                                      bytes_per_element=bytes_per_element).total / 1e6 for n in ns]
    own_figure = ax is None
    ax = ax if ax is not None else plt.subplots(figsize=(6, 4))[1]
    ax.loglog(ns, naive, "o-", label="naive (S and P through HBM)")
    ax.loglog(ns, flash, "s-", label=f"tiled, block_m={block_m}")
    ax.loglog(ns, causal, "^-", label="tiled, causal")
    ax.set(xlabel="sequence length N", ylabel="HBM traffic (MB), one head",
           title=f"Attention forward, d={d}, {8 * bytes_per_element}-bit elements")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    if own_figure:
        ax.figure.tight_layout()
    return ax


def plot_half_precision_errors(result: dict, dtype_name: str = "float16", ax=None):
    """Mean |error| against N for the kernel and the naive 16-bit attention
    (the output of :func:`roadmap_lib.chapters.ch13_flashattention_kernels.experiments.half_precision_errors`)."""
    own_figure = ax is None
    ax = ax if ax is not None else plt.subplots(figsize=(6, 3.5))[1]
    ax.plot(result["lengths"], result["naive"], "o-", label=f"naive, S and P stored in {dtype_name}")
    ax.plot(result["lengths"], result["kernel"], "s-", label="FlashAttention kernel (float32 accumulators)")
    ax.set(xscale="log", xlabel="sequence length N", ylabel="mean |error| vs float64",
           title=f"{dtype_name} attention, causal")
    ax.legend()
    if own_figure:
        ax.figure.tight_layout()
    return ax


def find_flash_results(results_dir: Path | str | None = None) -> list[Path]:
    """The ``flash_*.json`` files written by the benchmark, sorted; empty when none was run."""
    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    return sorted(folder.glob("flash_*.json")) if folder.is_dir() else []


def load_flash_results(path: Path | str) -> dict:
    """Read one results file and check it has what the table needs."""
    data = json.loads(Path(path).read_text())
    for key in ("device", "rows"):
        if key not in data:
            raise ValueError(f"{path}: not a bench_flash.py results file (no {key!r} entry)")
    return data


def flash_results_markdown(data: dict, *, dtype: str = "bfloat16", causal: bool = False,
                           d: int = 128, kv_heads: int | None = None) -> str:
    """A markdown table of TFLOP/s: one row per (pass, N), one column per implementation.

    ``kv_heads=None`` selects multi-head attention (as many key/value heads as query heads).
    """
    rows = [
        r for r in data["rows"]
        if r["dtype"] == dtype and r["causal"] == causal and r["d"] == d
        and r["kv_heads"] == (r["heads"] if kv_heads is None else kv_heads)
    ]
    if not rows:
        return f"(no rows for dtype={dtype}, causal={causal}, d={d}, kv_heads={kv_heads})"
    impls = [i for i in IMPLS if any(r["impl"] == i for r in rows)]
    lines = ["| pass | N | " + " | ".join(impls) + " |", "|---|---:|" + "---:|" * len(impls)]
    for pass_ in PASSES:
        for n in sorted({r["n"] for r in rows}):
            cells = []
            for impl in impls:
                hit = [r for r in rows if r["pass"] == pass_ and r["n"] == n and r["impl"] == impl]
                t = hit[0].get("tflops") if hit else None
                cells.append(f"{t:.1f}" if t is not None else "—")
            lines.append(f"| {pass_} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = [
    "RESULTS_DIR", "find_flash_results", "flash_results_markdown", "load_flash_results",
    "plot_half_precision_errors", "plot_hbm_traffic", "plot_online_softmax_step",
]
