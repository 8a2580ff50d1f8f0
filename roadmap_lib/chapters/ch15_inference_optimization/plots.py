"""Chapter 15's figures. Each helper takes ``ax=None`` (or ``axes``) and returns what it drew on."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from roadmap_lib.parallel import gpipe_bubble


def _ax(ax):
    return plt.subplots(figsize=(6, 3.5))[1] if ax is None else ax


def plot_kv_memory(rows: list[dict], seq_len: int, batch: int, ax=None):
    """Bars of KV-cache GiB per model at ``seq_len`` tokens times ``batch`` sequences."""
    ax = _ax(ax)
    names = [r["model"] for r in rows]
    gib = [r["gib"] for r in rows]
    bars = ax.barh(names, gib, color=["C0" if "no GQA" not in n else "C3" for n in names])
    ax.bar_label(bars, fmt="%.1f GiB", padding=3)
    ax.set_xlabel(f"KV cache (GiB, fp16) for {batch} x {seq_len} tokens")
    ax.invert_yaxis()
    ax.set_xlim(0, max(gib) * 1.3)
    return ax


def plot_waste(reports: dict, ax=None):
    """Reserved bytes per scheme, as a multiple of the bytes holding tokens; ``reports`` maps a
    label to a list of :func:`~roadmap_lib.inference.paged.waste_report` dicts (one per seed)."""
    ax = _ax(ax)
    labels = list(reports)
    for i, label in enumerate(labels):
        ratios = [r["paged_bytes" if label != "contiguous" else "contiguous_bytes"] / r["used_bytes"]
                  for r in reports[label]]
        ax.bar(i, sum(ratios) / len(ratios), color="C3" if label == "contiguous" else "C0", alpha=0.6)
        ax.plot([i] * len(ratios), ratios, "k.", ms=6)
    ax.axhline(1, color="gray", lw=0.8, ls="--")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("reserved / used bytes")
    return ax


def plot_speculative(ks, acceptance: dict, speedup: dict, axes=None):
    """Left: acceptance rate per draft length (one dot per prompt or run). Right: measured speed-up
    over the target alone (one dot per benchmark round, line through the median)."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    a, b = axes
    for k in ks:
        a.plot([k] * len(acceptance[k]), acceptance[k], "C0.", alpha=0.6)
    a.plot(ks, [sum(acceptance[k]) / len(acceptance[k]) for k in ks], "C0-", label="mean")
    a.set_xlabel("draft length k")
    a.set_ylabel("acceptance rate")
    a.set_ylim(0, 1)
    a.legend()
    for k in ks:
        b.plot([k] * len(speedup[k]), speedup[k], "C1.", alpha=0.6)
    b.plot(ks, [sorted(speedup[k])[len(speedup[k]) // 2] for k in ks], "C1-", label="median round")
    b.axhline(1, color="gray", lw=0.8, ls="--")
    b.set_xlabel("draft length k")
    b.set_ylabel("speed-up over the target alone")
    b.legend()
    return axes


def plot_batching(bench: dict, ax=None):
    """Throughput (tokens/s) of static and continuous batching, one dot per round and workload."""
    ax = _ax(ax)
    for i, policy in enumerate(("static", "continuous")):
        for j, (seed, runs) in enumerate(bench["workloads"].items()):
            tps = [r["tokens"] / r["seconds"] for r in runs[policy]]
            ax.plot([i + 0.1 * (j - 1)] * len(tps), tps, f"C{j}o", alpha=0.6,
                    label=f"workload seed {seed}" if i == 0 else None)
    ax.set_xticks([0, 1], ["static", "continuous"])
    ax.set_ylabel("generated tokens / s")
    ax.set_xlim(-0.5, 1.5)
    ax.legend(fontsize=8)
    return ax


def plot_streaming(nll: dict, context: int, smooth: int = 16, ax=None):
    """Per-position NLL averaged over segments and smoothed over ``smooth`` tokens, per method."""
    ax = _ax(ax)
    for i, (name, runs) in enumerate(nll.items()):
        mean = torch.stack(runs).mean(0)
        kernel = torch.ones(smooth) / smooth
        sm = torch.nn.functional.conv1d(mean[None, None], kernel[None, None])[0, 0]
        ax.plot(torch.arange(len(sm)) + smooth, sm, f"C{i}", label=name)
    ax.axvline(context, color="gray", ls="--", lw=0.8)
    ax.text(context, ax.get_ylim()[1] * 0.95, " context length", fontsize=8, va="top")
    ax.set_xlabel("position in the stream (characters)")
    ax.set_ylabel(f"NLL (nats/char, mean of {smooth})")
    ax.legend(fontsize=8)
    return ax


def plot_timeline(timelines: list[list[tuple]], ax=None):
    """Gantt chart of a pipeline step: one row per stage, forward in blue, backward in orange."""
    ax = _ax(ax)
    t0 = min(t[2] for tl in timelines for t in tl)
    for stage, tl in enumerate(timelines):
        for kind, mb, start, end in tl:
            ax.barh(stage, (end - start) * 1e3, left=(start - t0) * 1e3,
                    color="C0" if kind == "F" else "C1", edgecolor="k", lw=0.5)
            ax.text((start + end) / 2 * 1e3 - t0 * 1e3, stage, f"{kind}{mb}", ha="center",
                    va="center", fontsize=7)
    ax.set_yticks(range(len(timelines)), [f"stage {s}" for s in range(len(timelines))])
    ax.invert_yaxis()
    ax.set_xlabel("time (ms)")
    return ax


def plot_bubble(measured: dict, stages: int = 2, ax=None):
    """Measured bubble fraction per micro-batch count (one dot per repeat) and GPipe's ideal."""
    ax = _ax(ax)
    ms = sorted(measured)
    for m in ms:
        ax.plot([m] * len(measured[m]), measured[m], "C0o", alpha=0.6)
    ax.plot(ms, [gpipe_bubble(stages, m) for m in ms], "k--", label="(p-1)/(m+p-1)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ms, [str(m) for m in ms])
    ax.set_xlabel("micro-batches m")
    ax.set_ylabel("idle fraction")
    ax.set_ylim(0, 1)
    ax.legend()
    return ax


__all__ = ["plot_batching", "plot_bubble", "plot_kv_memory", "plot_speculative",
           "plot_streaming", "plot_timeline", "plot_waste"]
