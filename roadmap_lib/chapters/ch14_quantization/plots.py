"""Chapter 14's figures. Each helper takes ``ax=None`` (or ``axes=None`` for a row of panels),
draws a new figure when it is omitted, and returns what it drew on."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from roadmap_lib.quantization import code_range, fake_quantize, qparams

GRANULARITY_LABELS = {"tensor": "per tensor", "channel": "per channel"}


def _label(g) -> str:
    return GRANULARITY_LABELS.get(g, f"group {g}")


def _axes(axes, n: int, size):
    if axes is None:
        axes = plt.subplots(1, n, figsize=size, constrained_layout=True)[1]
    return np.atleast_1d(axes)


def rtn_grid(w: torch.Tensor, bits: int, scheme: str) -> dict:
    """Per-tensor round-to-nearest of a 1-D ``w``: its scale, zero point, the grid of representable
    values and the dequantised ``w_hat`` (for the worked example's figure)."""
    w2 = w.reshape(1, -1).float()
    scale, zero = qparams(w2, bits, scheme, "tensor")
    lo, hi = code_range(bits, scheme)
    z = 0 if zero is None else int(zero)
    levels = float(scale) * (torch.arange(lo, hi + 1) - z)
    return {"scale": float(scale), "zero": z, "levels": levels,
            "w_hat": fake_quantize(w2, bits, scheme, "tensor").reshape(-1)}


def plot_quantization_grid(w: torch.Tensor, bits: int, axes=None):
    """Two rows of the worked example: the grid of absmax and of zero-point quantisation with the
    values and where they round to (left), and the rounding error against ±half a step (right)."""
    if axes is None:
        axes = plt.subplots(2, 2, figsize=(11, 4.6), constrained_layout=True,
                            gridspec_kw={"width_ratios": [2.2, 1]})[1]
        axes[0][0].sharex(axes[1][0])
        axes[0][1].sharey(axes[1][1])
    x = np.arange(len(w))
    for row, (scheme, color) in enumerate((("absmax", "tab:blue"), ("zeropoint", "tab:orange"))):
        g = rtn_grid(w, bits, scheme)
        ax, ax_err = axes[row]
        ax.vlines(g["levels"], -0.6, 0.6, color=color, lw=1, alpha=0.6)
        ax.plot(w, np.zeros(len(w)), "ko", ms=5, label="w")
        ax.plot(g["w_hat"], np.full(len(w), 0.35), "v", color=color, ms=7, label="ŵ (rounded)")
        for a, b in zip(w.tolist(), g["w_hat"].tolist()):
            ax.annotate("", (b, 0.3), (a, 0.05), arrowprops={"arrowstyle": "->", "color": "grey", "lw": 0.8})
        ax.axvline(0, color="k", lw=0.6, ls=":")
        ax.set(yticks=[], ylim=(-1.0, 0.8),
               title=f"{scheme}, {bits} bits: {len(g['levels'])} levels, step s = {g['scale']:.3f}"
                     + (f", zero point z = {g['zero']}" if scheme == "zeropoint" else ""))
        ax.legend(loc="lower left", fontsize=8, ncol=2)
        err = (w - g["w_hat"]).numpy()
        ax_err.bar(x, err, color=color)
        ax_err.axhspan(-g["scale"] / 2, g["scale"] / 2, color=color, alpha=0.12, label="±s/2")
        ax_err.axhline(0, color="k", lw=0.6)
        ax_err.set(title="error w − ŵ", xlabel="element" if row else None, xticks=x)
        ax_err.legend(fontsize=8)
    axes[1][0].set_xlabel("value")
    return axes


def plot_weight_quantization(w: torch.Tensor, bits: int = 4, granularity="channel",
                             scheme: str = "absmax", axes=None):
    """Left: the weights of one matrix and their quantised values (histograms). Right: relative
    error ||W − Ŵ||² / ||W||² against bits for each granularity, the chosen setting circled."""
    ax_h, ax_e = _axes(axes, 2, (11, 3.6))
    w = w.detach().float()
    w_hat = fake_quantize(w, bits, scheme, granularity)
    rel = float(((w - w_hat) ** 2).sum() / (w**2).sum())
    edges = np.linspace(float(w.min()), float(w.max()), 121)
    ax_h.hist(w.flatten().numpy(), bins=edges, color="grey", alpha=0.5, label="w (float32)")
    ax_h.hist(w_hat.flatten().numpy(), bins=edges, histtype="step", color="tab:purple", lw=1.2,
              label="ŵ (dequantised)")
    ax_h.set(yscale="log", xlabel="weight value", ylabel="count",
             title=f"{bits}-bit {scheme}, {_label(granularity)}: relative error {rel:.2e}")
    ax_h.legend(fontsize=8)
    bit_range = list(range(2, 9))
    options = [g for g in ("tensor", "channel", 128, 32) if g == "tensor" or g == "channel"
               or w.shape[1] % g == 0]
    for g in dict.fromkeys([*options, granularity]):
        errs = [float(((w - fake_quantize(w, b, scheme, g)) ** 2).sum() / (w**2).sum()) for b in bit_range]
        ax_e.plot(bit_range, errs, "o-", ms=3, label=_label(g))
    ax_e.plot([bits], [rel], "o", ms=12, mfc="none", mec="k", mew=1.5)
    ax_e.set(yscale="log", xlabel="bits per code", ylabel="relative error",
             title=f"error against bits ({scheme})")
    ax_e.grid(alpha=0.3)
    ax_e.legend(fontsize=8)
    return np.array([ax_h, ax_e])


def plot_outlier_channels(acts: dict, names: list[str], threshold: float = 6.0, heatmap: str | None = None,
                          tokens: int = 64, axes=None):
    """Left: max |x| of every input feature of the named layers (one line each), the LLM.int8()
    threshold dashed. Right: |x| of the first ``tokens`` tokens of the ``heatmap`` layer."""
    ax_l, ax_r = _axes(axes, 2, (12, 3.8))
    for n in names:
        mx = acts[n].abs().amax(dim=0).numpy()
        top = int(mx.argmax())
        line, = ax_l.plot(mx, lw=1, label=f"{n} (max: channel {top})")
        ax_l.plot([top], [mx[top]], "o", color=line.get_color(), ms=5)
    ax_l.axhline(threshold, color="k", ls="--", lw=0.8, label=f"LLM.int8() threshold {threshold:g}")
    ax_l.set(xlabel="input feature (channel)", ylabel="max |x| over tokens",
             title="activation outliers: largest value of each feature")
    ax_l.legend(fontsize=7)
    heatmap = heatmap or names[0]
    x = acts[heatmap][:tokens].abs().numpy()
    im = ax_r.imshow(x, aspect="auto", cmap="magma", interpolation="nearest")
    plt.colorbar(im, ax=ax_r, label="|x|")
    ax_r.set(xlabel="input feature (channel)", ylabel="token", title=f"|x| entering {heatmap}")
    return np.array([ax_l, ax_r])


def plot_granularity_errors(errors: dict, names: list[str], bits: int = 4, ax=None):
    """Relative weight error of every layer for each granularity (log scale)."""
    ax = ax if ax is not None else plt.subplots(figsize=(11, 3.6), constrained_layout=True)[1]
    x = np.arange(len(names))
    for g, errs in errors.items():
        ax.plot(x, errs, "o-", ms=3, lw=1, label=_label(g))
    ax.set_xticks(x, [n.replace("blocks.", "").replace("attn.", "").replace("ffn.", "") for n in names],
                  rotation=60, fontsize=7)
    ax.set(yscale="log", ylabel="||W − Ŵ||² / ||W||²", title=f"{bits}-bit absmax RTN, each layer of the GPT")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_storage(breakdowns: dict, ax=None):
    """Stacked bars: the bytes each variant stores, by kind (codes, scales, biases, ...)."""
    ax = ax if ax is not None else plt.subplots(figsize=(9, 3), constrained_layout=True)[1]
    labels = list(breakdowns)
    kinds = list(next(iter(breakdowns.values())))
    left = np.zeros(len(labels))
    for kind in kinds:
        vals = np.array([breakdowns[lab][kind] for lab in labels]) / 1024
        ax.barh(labels, vals, left=left, label=kind)
        left += vals
    for i, total in enumerate(left):
        ax.text(total, i, f" {total:,.0f} KiB", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="KiB stored", xlim=(0, left.max() * 1.18), title="what the model stores")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_codebooks(nf4: torch.Tensor, normalised: torch.Tensor, errors: dict, axes=None):
    """Left: weights normalised by their block's absmax (histogram) with the NF4 values and the
    int4 absmax grid. Right: mean squared error of each format, on each kind of weights
    (``errors``: {weights: {format: mse}})."""
    ax_l, ax_r = _axes(axes, 2, (12, 3.6))
    ax_l.hist(normalised.numpy(), bins=120, color="grey", alpha=0.45, density=True,
              label="w / absmax of its block of 64 (normal weights)")
    ymax = ax_l.get_ylim()[1]
    ax_l.vlines(nf4.numpy(), 0, ymax * 0.55, color="tab:green", lw=1.6, label="NF4: 16 quantiles of N(0, 1)")
    ax_l.vlines(np.arange(-7, 8) / 7, ymax * 0.55, ymax, color="tab:blue", lw=1, label="int4 absmax: 15 even steps")
    ax_l.set(xlabel="normalised value", ylabel="density", title="two 4-bit code books on [−1, 1]")
    ax_l.legend(fontsize=7, loc="upper left")
    groups = list(errors)
    formats = list(next(iter(errors.values())))
    width = 0.8 / len(formats)
    for i, f in enumerate(formats):
        ax_r.bar(np.arange(len(groups)) + i * width, [errors[g][f] / errors[g][formats[0]] for g in groups],
                 width, label=f)
    ax_r.axhline(1, color="k", lw=0.6)
    ax_r.set_xticks(np.arange(len(groups)) + width * (len(formats) - 1) / 2, groups)
    ax_r.set(ylabel=f"MSE relative to {formats[0]}", title="4-bit error, blocks of 64")
    ax_r.legend(fontsize=8)
    return np.array([ax_l, ax_r])


def plot_llm_int8(cases: dict, ax=None):
    """Grouped bars (log scale): relative output error of int8 with and without the outlier
    decomposition, for each case ({case: {variant: error}})."""
    ax = ax if ax is not None else plt.subplots(figsize=(8, 3.4), constrained_layout=True)[1]
    names = list(cases)
    variants = [k for k in next(iter(cases.values())) if k != "outlier features"]
    width = 0.8 / len(variants)
    for i, v in enumerate(variants):
        ax.bar(np.arange(len(names)) + i * width, [cases[c][v] for c in names], width, label=v)
    ax.set_xticks(np.arange(len(names)) + width * (len(variants) - 1) / 2,
                  [f"{c}\n({cases[c]['outlier features']} outlier features)" for c in names], fontsize=8)
    ax.set(yscale="log", ylabel="||y − ŷ||² / ||y||²", title="LLM.int8(): int8 matmul error")
    ax.legend(fontsize=8)
    return ax


def plot_layer_objectives(objectives: dict, ax=None):
    """Each layer's output error of GPTQ and AWQ divided by RTN's (below 1: better than RTN)."""
    ax = ax if ax is not None else plt.subplots(figsize=(11, 3.6), constrained_layout=True)[1]
    names = list(objectives)
    x = np.arange(len(names))
    for i, (method, color) in enumerate((("GPTQ", "tab:green"), ("AWQ", "tab:red"))):
        ratio = [objectives[n][method] / objectives[n]["RTN"] for n in names]
        ax.bar(x + (i - 0.5) * 0.4, ratio, 0.4, color=color, label=f"{method} / RTN")
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xticks(x, [n.replace("blocks.", "").replace("attn.", "").replace("ffn.", "") for n in names],
                  rotation=60, fontsize=7)
    ax.set(ylabel="output error / RTN's", title="one layer at a time, measured on held-out inputs")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return ax


def plot_awq_search(errors: list, act: torch.Tensor, scales: torch.Tensor, axes=None):
    """Left: AWQ's output error against α (s = mean|x|^α). Right: the kept scale of each input
    channel against its mean |x|."""
    ax_l, ax_r = _axes(axes, 2, (11, 3.4))
    alphas, errs = zip(*errors)
    ax_l.plot(alphas, errs, "o-", ms=3)
    best = int(np.argmin(errs))
    ax_l.plot([alphas[best]], [errs[best]], "o", ms=10, mfc="none", mec="k")
    ax_l.set(xlabel="α", ylabel="mean squared output error", title="AWQ's grid search (α = 0 is RTN)")
    ax_l.grid(alpha=0.3)
    ax_r.scatter(act.numpy(), scales.numpy(), s=8)
    ax_r.axhline(1, color="k", lw=0.6)
    ax_r.set(xlabel="mean |x| of the input channel", ylabel="scale s",
             title=f"s = mean|x|^{alphas[best]:.2f}: salient channels scaled up")
    ax_r.grid(alpha=0.3)
    return np.array([ax_l, ax_r])


def plot_table(rows: list[dict], ax=None):
    """One bar per method: perplexity change against float32 (mean over seeds), the range over the
    calibration seeds in black, ±2 standard errors in grey; the labels give the stored bits per weight."""
    rows = [r for r in rows if r["key"] != "fp32"]
    ax = ax if ax is not None else plt.subplots(figsize=(9, 0.36 * len(rows) + 1.2), constrained_layout=True)[1]
    y = np.arange(len(rows))
    colors = ["tab:green" if r["seeds"] > 1 else "tab:blue" for r in rows]
    ax.barh(y, [r["delta"] for r in rows], color=colors, alpha=0.8)
    ax.errorbar([r["delta"] for r in rows], y, xerr=[2 * r["se"] for r in rows], fmt="none", ecolor="grey",
                elinewidth=4, alpha=0.45, label="±2 SE")
    seeded = [(i, r) for i, r in enumerate(rows) if r["seeds"] > 1]
    ax.errorbar([r["delta"] for _, r in seeded], [i for i, _ in seeded],
                xerr=[[r["delta"] - r["delta_min"] for _, r in seeded], [r["delta_max"] - r["delta"] for _, r in seeded]],
                fmt="none", ecolor="k", capsize=4, label="range over 3 calibration seeds")
    top = max(r["delta_max"] + 2 * r["se"] for r in rows)
    ax.set_yticks(y, [f"{r['label']}, {r['weight_bits']:.2f} bits" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xscale("symlog", linthresh=0.01, linscale=0.5)
    ax.set_xlim(-0.01, top * 1.5)
    ax.set(xlabel="perplexity − float32's (symmetric log scale, linear below 0.01)",
           title="what each format costs on held-out text (green: calibrated, 3 seeds)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="upper right")
    return ax


def fmt_bytes(n: int) -> str:
    return f"{n / 1024:,.0f} KiB" if n < 1024**2 else f"{n / 1024**2:.2f} MiB"


def table_markdown(rows: list[dict], speed: dict | None = None, shapes=("12x64", "1x64")) -> str:
    """The results table as Markdown. ``speed``: the benchmark file's ``methods`` (forward ms for
    each input shape in ``shapes``)."""
    cols = "".join(f" CPU ms, {s.replace('x', ' × ')} |" for s in shapes)
    head = ("| method | bits / weight | bytes | perplexity | Δ vs float32 (mean ± std over seeds) | ± 1 SE |"
            + cols + "\n|---|---:|---:|---:|---:|---:|" + "---:|" * len(shapes) + "\n")
    lines = []
    for r in rows:
        delta = "—" if r["key"] == "fp32" else (
            f"{r['delta']:+.4f} ± {r['delta_std']:.4f}" if r["seeds"] > 1 else f"{r['delta']:+.4f}")
        ms = "".join(f" {speed[r['key']]['forward_ms'][s]:.1f} |" if speed and r["key"] in speed else " n/a |"
                     for s in shapes)
        se = "—" if r["key"] == "fp32" else f"{r['se']:.4f}"
        lines.append(f"| {r['label']} | {r['weight_bits']:.2f} | {fmt_bytes(r['bytes'])} | {r['ppl']:.4f} "
                     f"| {delta} | {se} |{ms}")
    return head + "\n".join(lines)


__all__ = ["fmt_bytes", "plot_awq_search", "plot_codebooks", "plot_granularity_errors",
           "plot_layer_objectives", "plot_llm_int8", "plot_outlier_channels", "plot_quantization_grid",
           "plot_storage", "plot_table", "plot_weight_quantization", "rtn_grid", "table_markdown"]
