"""Chapter 10's figures. Every helper takes ``ax=None`` (or ``axes``) and returns what it drew on."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from roadmap_lib.packing import PackedBatch, document_causal_mask


def _axes(ax, n=1, figsize=(5, 3.2)):
    if ax is not None:
        return ax
    _, ax = plt.subplots(1, n, figsize=figsize, constrained_layout=True)
    return ax


def plot_accumulation_errors(errors: dict[str, dict[int, float]], ax=None):
    """``errors[normalize][k]``: relative gradient error of accumulating ``k`` micro-batches."""
    ax = _axes(ax)
    for name, row in errors.items():
        ks = sorted(row)
        ax.plot(ks, [max(row[k], 1e-12) for k in ks], "o-", label=name)
    ax.set(xscale="log", yscale="log", xlabel="micro-batches k", ylabel="max |Δgrad| / max |grad|",
           title="accumulated vs full-batch gradients")
    ax.set_xticks(sorted(next(iter(errors.values()))), labels=[str(k) for k in sorted(next(iter(errors.values())))])
    ax.legend(fontsize=8)
    return ax


def plot_layouts(batches: dict[str, PackedBatch], rows: int = 12, axes=None):
    """One panel per batch: which document each position holds (white = padding)."""
    axes = _axes(axes, len(batches), figsize=(4.2 * len(batches), 3.2))
    axes = np.atleast_1d(axes)
    for ax, (name, b) in zip(axes, batches.items()):
        d = b.doc_ids[:rows].float()
        img = np.ma.masked_where(d.numpy() < 0, (d.numpy() * 7.3) % 20)
        ax.imshow(img, cmap="tab20", aspect="auto", interpolation="nearest", vmin=0, vmax=20)
        ax.set(title=f"{name}: {b.ids.shape[0]} rows, {100 * b.pad_fraction:.0f} % padding",
               xlabel="position", ylabel="row")
    return axes


def plot_document_mask(batch: PackedBatch, row: int = 0, ax=None):
    ax = _axes(ax, figsize=(3.4, 3.2))
    ax.imshow(document_causal_mask(batch.doc_ids[row:row + 1])[0, 0].numpy(), cmap="Greys", interpolation="nearest")
    ax.set(title=f"document-causal mask, row {row}", xlabel="key j", ylabel="query i")
    return ax


def plot_bytes(values: dict[str, float], title: str, unit: str = "MB", scale: float = 1e6, ax=None):
    ax = _axes(ax, figsize=(5.5, 2.8))
    names = list(values)
    ax.barh(names, [values[n] / scale for n in names], color="tab:blue")
    for i, n in enumerate(names):
        ax.text(values[n] / scale, i, f" {values[n] / scale:.3g}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel=unit, title=title)
    return ax


def plot_curves(curves: dict[str, dict[str, list[float]]], smooth: int = 10, ax=None):
    """``curves[precision][seed]``: training losses; each seed drawn thin, smoothed over ``smooth`` steps."""
    ax = _axes(ax)
    colors = {"fp32": "tab:blue", "bf16": "tab:orange"}
    for precision, seeds in curves.items():
        for i, losses in enumerate(seeds.values()):
            x = torch.tensor(losses)
            sm = x.unfold(0, smooth, 1).mean(1)
            ax.plot(range(smooth, len(x) + 1), sm, color=colors.get(precision), lw=1,
                    label=precision if i == 0 else None)
    ax.set(xlabel="step", ylabel=f"training loss (mean of {smooth} steps)", title="fp32 vs bf16 autocast")
    ax.legend()
    return ax


def plot_finetune(rows: list[dict], axes=None):
    """F1 against trainable parameters (every seed a dot, the mean a bar) and CPU seconds."""
    axes = _axes(axes, 2, figsize=(9, 3.2))
    levels = list(dict.fromkeys(r["level"] for r in rows))
    for i, lv in enumerate(levels):
        rs = [r for r in rows if r["level"] == lv]
        f1 = [r["f1"] for r in rs]
        axes[0].bar(i, sum(f1) / len(f1), color="tab:blue", alpha=0.4)
        axes[0].plot([i] * len(f1), f1, "o", color="tab:blue")
        axes[1].bar(i, sum(r["seconds"] for r in rs) / len(rs), color="tab:gray")
    labels = [f"{lv}\n{next(r['trainable'] for r in rows if r['level'] == lv):,} params" for lv in levels]
    for ax in axes:
        ax.set_xticks(range(len(levels)), labels=labels, fontsize=8)
    axes[0].set(ylabel="intruder F1 (val)", title="quality (dots: seeds)")
    axes[1].set(ylabel="CPU seconds", title="training time (mean of seeds)")
    return axes


def plot_objectives(rows: list[dict], metrics=(("probe", "linear probe"), ("finetune", "fine-tune")),
                    ylabel: str = "score (val)", chance: float | None = 0.5, axes=None):
    """One panel per metric: every objective a bar (mean of seeds) with its seeds as dots; the y axis
    starts at ``chance`` (drawn dashed) when given."""
    axes = _axes(axes, len(metrics), figsize=(4.5 * len(metrics), 3.2))
    axes = np.atleast_1d(axes)
    objectives = list(dict.fromkeys(r["objective"] for r in rows))
    for ax, (key, title) in zip(axes, metrics):
        for i, obj in enumerate(objectives):
            v = [r[key] for r in rows if r["objective"] == obj]
            color = "tab:gray" if i == len(objectives) - 1 and obj.startswith("random") else "tab:blue"
            ax.bar(i, sum(v) / len(v), color=color, alpha=0.4)
            ax.plot([i] * len(v), v, "o", color=color)
        ax.set_xticks(range(len(objectives)), labels=[o.replace(" ", "\n", 1) for o in objectives], fontsize=8)
        ax.set(ylabel=ylabel, title=f"{title} (dots: seeds)")
        if chance is not None:
            ax.axhline(chance, color="k", ls="--", lw=0.8)
            top = max(r[key] for r in rows)
            ax.set_ylim(chance - 0.01, top + 0.3 * (top - chance))
    return axes


def plot_objective_masks(examples: dict[str, dict], axes=None):
    """One attention mask per objective (rows: queries, columns: keys; dark: may attend), with the
    predicted positions marked on the left."""
    axes = _axes(axes, len(examples), figsize=(3.2 * len(examples), 3.4))
    for ax, (name, ex) in zip(np.atleast_1d(axes), examples.items()):
        m = ex["mask"].float().numpy()
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1.3)
        rows = [t for t, _ in ex["predict"]]
        ax.plot([-0.9] * len(rows), rows, ">", color="tab:red", ms=4, clip_on=False)
        ax.set(title=name, xlabel="key", ylabel="query" if ax is np.atleast_1d(axes)[0] else None)
        ax.set_xlim(-1.5, m.shape[1] - 0.5)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.yaxis.get_major_locator().set_params(integer=True)
    return axes


def _condition_color(c: str) -> str:
    return {"not tuned": "tab:gray", "one template": "tab:orange", "varied": "tab:blue"}.get(c, "tab:green")


def _grouped_bars(ax, rows: list[dict], groups: list[str], value):
    """Bars grouped by ``groups``, one bar per condition (mean of its rows ``value(row, group)``), its
    seeds as dots."""
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    width = 0.8 / len(conditions)
    for j, c in enumerate(conditions):
        for i, g in enumerate(groups):
            v = [value(r, g) for r in rows if r["condition"] == c]
            x = i + (j - (len(conditions) - 1) / 2) * width
            ax.bar(x, sum(v) / len(v), width, color=_condition_color(c), alpha=0.45, label=c if i == 0 else None)
            ax.plot([x] * len(v), v, "o", color=_condition_color(c), ms=4)
    ax.set_xticks(range(len(groups)), labels=list(groups))
    ax.legend(fontsize=8)
    return ax


def plot_instruct(rows: list[dict], sets=("seen template", "held-out template", "held-out family"), ax=None):
    """Exact match of each condition (bars: mean over seeds, dots: seeds) on each evaluation set."""
    ax = _grouped_bars(_axes(ax, figsize=(6.5, 3.4)), rows, list(sets), lambda r, s: r["scores"][s]["exact"])
    ax.set(ylabel="exact match (test words)", title="instruction tuning (bars: mean, dots: seeds)")
    return ax


def plot_instruct_by_family(rows: list[dict], eval_set: str, ax=None):
    """Exact match per task family on one evaluation set, each condition a bar (mean) with its seeds."""
    families = list(rows[0]["scores"][eval_set]["by_family"])
    ax = _grouped_bars(_axes(ax, figsize=(6.5, 3.2)), rows, families,
                       lambda r, f: r["scores"][eval_set]["by_family"][f])
    ax.set(ylabel="exact match", ylim=(0, 1.02), title=f"by family: {eval_set}")
    return ax
