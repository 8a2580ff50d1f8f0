"""Chapter 25's figures. Each takes ``ax=None`` (or a figure's axes) and returns the axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def _ax(ax):
    return ax if ax is not None else plt.subplots(figsize=(7, 3.6))[1]


def plot_premium(premium: dict[str, dict[str, float]], ax=None):
    """Grouped bars: tokens relative to English per language, one colour per tokenizer."""
    ax = _ax(ax)
    names = list(premium)
    langs = list(next(iter(premium.values())))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        ax.bar([i + k * width for i in range(len(langs))], [premium[name][lang] for lang in langs],
               width, label=name)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(langs))], langs)
    ax.set_ylabel("tokens / English tokens\n(same messages)")
    ax.set_title("what the same message costs in tokens, per language")
    ax.legend(fontsize=8)
    return ax


def plot_transfer(study: dict, settings=("in-language", "shared", "separate"), ax=None):
    """Accuracy per test language: mean over seeds (bars) and every seed (dots); majority line."""
    ax = _ax(ax)
    langs = study["languages"]
    width = 0.8 / len(settings)
    for k, setting in enumerate(settings):
        runs = study["accuracy"][setting]
        xs = [i + k * width for i in range(len(langs))]
        means = [sum(r[lang] for r in runs) / len(runs) for lang in langs]
        ax.bar(xs, means, width, label=setting, alpha=0.8)
        for r in runs:
            ax.plot(xs, [r[lang] for lang in langs], "k.", ms=3)
    major = sum(study["accuracy"]["majority"]) / len(study["accuracy"]["majority"])
    ax.axhline(major, color="k", ls="--", lw=0.8, label="majority class")
    ax.set_xticks([i + width * (len(settings) - 1) / 2 for i in range(len(langs))], langs)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("trained on English (shared, separate) or in the test language")
    ax.legend(fontsize=8, ncol=4, loc="upper center")
    return ax


def plot_costs(rows: list[dict], key: str = "cost", ax=None, label: str = "cost ($, assumed prices)"):
    """Horizontal bars of ``key`` per worked example (log scale)."""
    ax = _ax(ax)
    ax.barh([r["name"] for r in rows], [r[key] for r in rows], color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel(label)
    for i, r in enumerate(rows):
        ax.text(r[key], i, f" {r[key]:.3g}", va="center", fontsize=8)
    return ax


def plot_attention(maps: torch.Tensor, example: int = 0, axes=None):
    """One panel per (layer, head) of ``maps`` (layers, batch, heads, L, L) for one example."""
    n_layers, _, n_heads = maps.shape[:3]
    if axes is None:
        _, axes = plt.subplots(n_layers, n_heads, figsize=(2.2 * n_heads, 2.2 * n_layers), squeeze=False)
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer][head]
            ax.imshow(maps[layer, example, head], cmap="Blues", vmin=0, vmax=1)
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    return axes


def plot_patching(effect: torch.Tensor, query: int, source: int | None = None, ax=None):
    """Heatmap of the recovered fraction per (residual state, position)."""
    ax = _ax(ax)
    im = ax.imshow(effect, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_yticks(range(effect.shape[0]), ["embed"] + [f"after block {i}" for i in range(effect.shape[0] - 1)])
    ax.set_xlabel("position patched")
    ax.axvline(query, color="k", ls=":", lw=0.8)
    if source is not None:
        ax.axvline(source, color="k", ls="--", lw=0.8)
    ax.set_title(f"recovered share of the clean log-prob at position {query}")
    plt.colorbar(im, ax=ax, fraction=0.03)
    return ax


def plot_logit_lens(probs: torch.Tensor, half: int, ax=None):
    """probs (states, L): mean probability of the right next token per state and position."""
    ax = _ax(ax)
    for i, p in enumerate(probs):
        ax.plot(range(len(p)), p, marker=".", label="embed" if i == 0 else f"after block {i - 1}")
    ax.axvline(half - 1.5, color="k", ls=":", lw=0.8)  # from position half - 1 on, the next token is a copy
    ax.set_xlabel("position")
    ax.set_ylabel("p(right next token)")
    ax.set_title("logit lens: read out each residual state")
    ax.legend(fontsize=8)
    return ax


def plot_test_time(curves: dict[str, list[tuple[list[float], list[float]]]], points: dict[str, tuple[float, float]],
                   ax=None):
    """Accuracy against token positions per problem (log x): for each sampled method, the mean over
    seeds (line, n = 1, 2, ... samples from left to right) and the min-max band over seeds; the
    single runs in ``points`` as markers."""
    ax = _ax(ax)
    for name, runs in curves.items():
        xs = [sum(r[0][i] for r in runs) / len(runs) for i in range(len(runs[0][0]))]
        ys = [[r[1][i] for r in runs] for i in range(len(xs))]
        line, = ax.plot(xs, [sum(y) / len(y) for y in ys], marker=".", label=f"{name} (n = 1..{len(xs)})")
        ax.fill_between(xs, [min(y) for y in ys], [max(y) for y in ys], color=line.get_color(), alpha=0.2)
    for (name, (x, y)), marker in zip(points.items(), "*Ps^"):
        ax.plot([x], [y], marker, ms=11, color="k", label=name, ls="none")
    ax.set_xscale("log")
    ax.set_xlabel("token positions the model processes per problem (log scale)")
    ax.set_ylabel("accuracy (124 problems)")
    ax.set_title("accuracy against test-time compute")
    ax.legend(fontsize=8, loc="lower right")
    return ax
