"""Chapter 20's figures. Each takes ``ax=None`` and returns the axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def _ax(ax):
    return ax if ax is not None else plt.subplots(figsize=(5.5, 3.5))[1]


def plot_detection(study: dict, ax=None):
    """Detection rate (z > threshold) against scored length, one line per delta: mean over seeds,
    the band from the lowest to the highest seed."""
    ax = _ax(ax)
    lengths = study["lengths"]
    for delta in study["deltas"]:
        per_seed = torch.tensor([[study["rate"][delta, s][L] for L in lengths] for s in study["seeds"]])
        line, = ax.plot(lengths, per_seed.mean(0), marker="o", label=f"δ = {delta:g}")
        ax.fill_between(lengths, per_seed.min(0).values, per_seed.max(0).values, color=line.get_color(), alpha=0.2)
    human = [float((study["human_z"][L] > study["threshold"]).double().mean()) for L in lengths]
    ax.plot(lengths, human, "k--", label="human text")
    ax.set(xscale="log", xlabel="characters scored", ylabel=f"share detected (z > {study['threshold']:g})",
           title="Green-list watermark on the zoo char GPT")
    ax.set_xticks(lengths, [str(L) for L in lengths])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return ax


def plot_quality(study: dict, ax=None):
    """Mean log-likelihood per character under the unbiased model against delta (a dot per seed)."""
    ax = _ax(ax)
    for s in study["seeds"]:
        ax.plot(study["deltas"], [study["loglik"][d, s] for d in study["deltas"]], "o", alpha=0.6,
                label=f"seed {s}")
    means = [sum(study["loglik"][d, s] for s in study["seeds"]) / len(study["seeds"]) for d in study["deltas"]]
    ax.plot(study["deltas"], means, "k-", label="mean")
    ax.set(xlabel="watermark strength δ", ylabel="log p per char (nats)", title="Quality cost")
    ax.legend(fontsize=8)
    return ax


def plot_z_hist(study: dict, delta: float, length: int, ax=None):
    """Histogram of z-scores: human text and generations with bias ``delta``, at ``length`` chars."""
    ax = _ax(ax)
    wm = torch.cat([study["z"][delta, s][length] for s in study["seeds"]])
    ax.hist(study["human_z"][length].numpy(), bins=20, alpha=0.6, density=True, label="human text")
    ax.hist(wm.numpy(), bins=20, alpha=0.6, density=True, label=f"generated, δ = {delta:g}")
    ax.axvline(study["threshold"], color="k", ls="--", lw=1)
    ax.set(xlabel="z-score", ylabel="density", title=f"{length} characters scored")
    ax.legend(fontsize=8)
    return ax


def plot_associations(sx, sy, x_words, y_words, title: str, ax=None):
    """WEAT associations s(w, A, B) of each target word, the two sets side by side."""
    ax = _ax(ax)
    words = list(x_words) + list(y_words)
    values = list(sx.tolist()) + list(sy.tolist())
    colors = ["tab:blue"] * len(x_words) + ["tab:orange"] * len(y_words)
    ax.bar(range(len(words)), values, color=colors)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(words)), words, rotation=60, fontsize=8)
    ax.set(ylabel="s(w, A, B)", title=title)
    return ax


def plot_exposure(rows: list[dict], max_bits: float, ax=None):
    """Exposure of each canary (dots, one per canary and seed) and the mean per duplicate count."""
    ax = _ax(ax)
    dups = sorted({r["duplicates"] for r in rows})
    for r in rows:
        ax.plot(r["duplicates"], r["exposure"], "o", color="tab:red" if r["extracted"] else "tab:blue", alpha=0.6)
    means = [sum(r["exposure"] for r in rows if r["duplicates"] == d) / sum(r["duplicates"] == d for r in rows)
             for d in dups]
    ax.plot(dups, means, "k-", label="mean")
    ax.axhline(max_bits, color="gray", ls="--", label="log2 |R| (most likely candidate)")
    ax.plot([], [], "o", color="tab:red", label="most likely of all pins (extracted)")
    ax.set(xscale="log", xlabel="copies of the canary in training", ylabel="exposure (bits)",
           title="Memorisation of planted secrets")
    ax.set_xticks(dups, [str(d) for d in dups])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return ax


def plot_memorisation(study: dict, key: str = "exposure", max_bits: float | None = None, ax=None):
    """Mean of ``key`` (``"exposure"`` in bits, or ``"greedy"`` / ``"extracted"`` as a rate) against
    the number of copies, one line per model width; the band runs from the lowest to the highest
    value over canaries and seeds (for a rate: over seeds, each seed's rate over its canaries)."""
    ax = _ax(ax)
    sizes = sorted({r["d_model"] for r in study["rows"]})
    dups = sorted({r["duplicates"] for r in study["rows"]})
    seeds = sorted({r["seed"] for r in study["rows"]})
    for d in sizes:
        params = next(r["params"] for r in study["rows"] if r["d_model"] == d)
        cells = [[float(r[key]) for r in study["rows"] if r["d_model"] == d and r["duplicates"] == c] for c in dups]
        if key != "exposure":  # a rate: spread over seeds
            cells = [[sum(float(r[key]) for r in study["rows"] if r["d_model"] == d and r["duplicates"] == c
                          and r["seed"] == s) / 2 for s in seeds] for c in dups]
        means = [sum(v) / len(v) for v in cells]
        line, = ax.plot(dups, means, marker="o", label=f"width {d} ({params / 1e3:.0f}k params)")
        ax.fill_between(dups, [min(v) for v in cells], [max(v) for v in cells], color=line.get_color(), alpha=0.15)
    if max_bits is not None:
        ax.axhline(max_bits, color="gray", ls="--", lw=1)
    label = {"exposure": "exposure (bits)", "greedy": "greedy extraction rate",
             "extracted": "share ranked first of all pins"}[key]
    ax.set(xscale="log", xlabel="copies of the canary in training", ylabel=label,
           title="Memorisation against copies and model width")
    ax.set_xticks(dups, [str(c) for c in dups])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return ax


def plot_energy(rows: list[dict], ax=None):
    """Estimated grams of CO2e of each recorded build (horizontal bars)."""
    ax = _ax(ax)
    rows = sorted(rows, key=lambda r: r["grams_co2"])
    ax.barh([r["file"] for r in rows], [r["grams_co2"] for r in rows])
    ax.set(xlabel="g CO2e (under the stated assumptions)", title="The project's recorded builds")
    ax.tick_params(axis="y", labelsize=7)
    return ax


__all__ = ["plot_associations", "plot_detection", "plot_energy", "plot_exposure", "plot_quality", "plot_z_hist"]


def plot_attack_success(summary: dict, ax=None):
    """Grouped bars: the share of attacks that leak the code, per attack family and defence (mean
    over seeds; dots: each seed)."""
    ax = _ax(ax)
    fams = list(summary["success"])
    defences = list(next(iter(summary["success"].values())))
    w = 0.8 / len(defences)
    for j, d in enumerate(defences):
        xs = [i + (j - (len(defences) - 1) / 2) * w for i in range(len(fams))]
        vals = [summary["success"][f][d] for f in fams]
        ax.bar(xs, [sum(v) / len(v) for v in vals], w, label=d)
        for x, v in zip(xs, vals):
            ax.scatter([x] * len(v), v, s=6, color="k", zorder=3)
    ax.set_xticks(range(len(fams)), fams, rotation=20, ha="right")
    ax.set_ylabel("attacks that leak the code")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    return ax
