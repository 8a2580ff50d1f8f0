"""Figures for chapter 03 (positional encodings): each takes plain tensors/dicts, draws on the axes
given (``ax=None`` / ``axes=None``: a new figure) and returns them."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

from roadmap_lib.positional import (
    RoPEConfig,
    alibi_bias,
    alibi_slopes,
    rope_angles,
    sinusoidal_encoding,
    t5_relative_position_bucket,
)


def plot_sinusoidal(seq_len: int = 128, d_model: int = 64, axes=None):
    """The sinusoidal table as an image, and a few of its columns as curves (two axes)."""
    pe = sinusoidal_encoding(seq_len, d_model)
    own_figure = axes is None
    axes = axes if axes is not None else plt.subplots(1, 2, figsize=(11, 3.4))[1]
    a, b = axes
    im = a.imshow(pe.T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
    a.set(xlabel="position", ylabel="feature", title=f"sinusoidal encoding ({seq_len} × {d_model})")
    a.figure.colorbar(im, ax=a)
    for i in (0, 8, 16, 32):
        b.plot(
            pe[:, i],
            label=f"feature {i} (sin, wavelength {2 * math.pi * 1e4 ** (i / d_model):.0f})",
        )
    b.set(xlabel="position", ylabel="value", title="fast and slow features")
    b.legend(fontsize=7, loc="lower left")
    if own_figure:
        a.figure.tight_layout()
    return axes


def plot_t5_buckets(num_buckets: int = 32, max_distance: int = 128, span: int = 200, ax=None):
    """Bucket index against relative distance, bidirectional and causal."""
    rel = torch.arange(-span, span + 1)
    own_figure = ax is None
    ax = ax if ax is not None else plt.subplots(figsize=(8, 3.4))[1]
    for bidirectional, style in ((True, "-"), (False, "--")):
        b = t5_relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
        ax.step(
            rel,
            b,
            style,
            where="mid",
            label="bidirectional (encoder)" if bidirectional else "causal (decoder)",
        )
    for x in (-max_distance, max_distance):
        ax.axvline(x, color="grey", lw=0.6, ls=":")
    ax.set(
        xlabel="relative position (key − query)",
        ylabel="bucket",
        title=f"T5 buckets: {num_buckets} buckets, max_distance {max_distance}",
    )
    ax.legend()
    if own_figure:
        ax.figure.tight_layout()
    return ax


def mean_pair_score(distances: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """RoPE score of a query and a key that are both all ones, divided by its value at distance 0:
    the mean over the ``dim / 2`` pairs of ``cos(Δ·θ_i)``, for each distance Δ in ``distances``."""
    theta = rope_angles(torch.tensor([1]), RoPEConfig(dim, base))[0].double()
    return torch.cos(distances.double()[:, None] * theta[None]).mean(-1)


def plot_rope_rotation(position: int = 5, pair: int = 0, dim: int = 16, base: float = 10000.0,
                       compare_dim: int | None = 128, axes=None):
    """Left: feature pair ``pair`` of a query at positions 0..position, turned by ``m·θ_pair``.
    Right: the score of a query and a key that share their content (all ones), against their
    distance: one pair alone (a cosine), all ``dim / 2`` pairs together, and all pairs of a
    ``compare_dim`` head (None: not drawn). Two axes."""
    cfg = RoPEConfig(dim, base)
    theta = rope_angles(torch.tensor([1]), cfg)[0]  # θ_i
    own_figure = axes is None
    axes = axes if axes is not None else plt.subplots(1, 2, figsize=(11, 4))[1]
    a, b = axes
    t = torch.linspace(0, 2 * math.pi, 200)
    a.plot(t.cos(), t.sin(), color="lightgrey")
    for m in range(position + 1):
        ang = m * theta[pair].item()
        last = m == position
        a.annotate(
            "",
            xy=(math.cos(ang), math.sin(ang)),
            xytext=(0, 0),
            arrowprops={
                "arrowstyle": "->",
                "color": "C3" if last else "C0",
                "alpha": 1.0 if last else 0.25,
            },
        )
    a.set(
        xlim=(-1.2, 1.2),
        ylim=(-1.2, 1.2),
        aspect="equal",
        xlabel="feature 2i (half: i)",
        ylabel="feature 2i+1 (half: i+d/2)",
        title=f"pair {pair}: θ = {theta[pair].item():.3g} rad/position; position {position}",
    )
    dist = torch.arange(0, 257)
    b.plot(dist, torch.cos(dist * theta[pair]), color="C0", alpha=0.5, lw=0.8,
           label=f"pair {pair} alone: cos(Δ·θ)")
    b.plot(dist, mean_pair_score(dist, dim, base), color="C1", label=f"all {dim // 2} pairs (head dim {dim})")
    if compare_dim is not None:
        b.plot(dist, mean_pair_score(dist, compare_dim, base), color="C2",
               label=f"all {compare_dim // 2} pairs (head dim {compare_dim})")
    b.axvline(position, color="C3", lw=0.8, ls=":")
    b.set(
        xlabel="distance m − n",
        ylabel="normalised score q_m·k_n",
        title="the score depends only on m − n (q = k = all ones)",
    )
    b.legend(fontsize=8)
    if own_figure:
        a.figure.tight_layout()
    return axes


def plot_context_extension(
    dim: int = 16, train_len: int = 64, factor: int = 4, base: float = 10000.0, ax=None
):
    """Per pair: the largest angle seen in training, and at ``factor``× the length with no scaling,
    position interpolation, and NTK-aware scaling."""
    test = torch.tensor([factor * train_len - 1])
    variants = {
        f"trained ({train_len} positions)": (RoPEConfig(dim, base), torch.tensor([train_len - 1])),
        f"no scaling ({factor}×)": (RoPEConfig(dim, base), test),
        f"position interpolation ({factor}×)": (
            RoPEConfig(dim, base, scaling="linear", factor=factor),
            test,
        ),
        f"NTK-aware ({factor}×)": (RoPEConfig(dim, base, scaling="ntk", factor=factor), test),
    }
    own_figure = ax is None
    ax = ax if ax is not None else plt.subplots(figsize=(8, 3.6))[1]
    for (name, (cfg, pos)), style in zip(variants.items(), ("k-", "o-", "s--", "^-")):
        ax.semilogy(rope_angles(pos, cfg)[0], style, label=name, ms=4)
    ax.axhline(2 * math.pi, color="grey", lw=0.6, ls=":")
    ax.set(
        xlabel="pair i (fast → slow)",
        ylabel="largest angle m·θ_i (rad)",
        title="context extension: which angles are new to the model?",
    )
    ax.legend(fontsize=8)
    if own_figure:
        ax.figure.tight_layout()
    return ax


def plot_alibi(num_heads: int = 12, seq_len: int = 16, axes=None):
    """The slopes (two geometric sequences when num_heads is not a power of two) and two heads' biases
    (three axes)."""
    slopes, bias = alibi_slopes(num_heads), alibi_bias(num_heads, seq_len)[0]
    causal = torch.ones(seq_len, seq_len, dtype=torch.bool).tril()
    own_figure = axes is None
    axes = axes if axes is not None else plt.subplots(1, 3, figsize=(12, 3.4))[1]
    if len(axes) != 3:
        raise ValueError(f"axes: expected 3 axes (slopes, first head, last head), got {len(axes)}")
    axes[0].semilogy(range(num_heads), slopes, "o")
    axes[0].set(xlabel="head", ylabel="slope (log scale)", title=f"ALiBi slopes, {num_heads} heads")
    for ax, h in zip(axes[1:], (0, num_heads - 1)):
        im = ax.imshow(bias[h].masked_fill(~causal, float("nan")), cmap="viridis")
        ax.set(
            xlabel="key position", ylabel="query position", title=f"head {h}: slope {slopes[h]:.3g}"
        )
        ax.figure.colorbar(im, ax=ax)
    if own_figure:
        axes[0].figure.tight_layout()
    return axes


def plot_extrapolation(rows: dict[str, dict[str, float | None]], train_len: int, ax=None):
    """Validation loss against evaluation length, one line per scheme (missing points: cannot run)."""
    own_figure = ax is None
    ax = ax if ax is not None else plt.subplots(figsize=(8, 4))[1]
    for i, (name, by_len) in enumerate(rows.items()):
        pts = [(int(n), v) for n, v in by_len.items() if v is not None]
        ax.plot(
            *zip(*pts),
            marker="o",
            ls="--" if name.startswith("rope+") else "-",
            color=f"C{i}",
            label=name,
        )
    ax.axvline(train_len, color="grey", lw=0.6, ls=":")
    ax.set_xscale("log", base=2)
    lengths = sorted({int(n) for by_len in rows.values() for n in by_len})
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set(
        xlabel="evaluation length (characters)",
        ylabel="validation loss (nats/char)",
        title=f"trained on {train_len} characters: loss at 1×, 2×, 4×",
    )
    ax.legend(fontsize=8, ncol=2)
    if own_figure:
        ax.figure.tight_layout()
    return ax


def plot_position_loss(full: torch.Tensor, cut: torch.Tensor, train_len: int, ax=None):
    """Loss at each position with the whole past and with only the last ``train_len`` characters."""
    own_figure = ax is None
    ax = ax if ax is not None else plt.subplots(figsize=(8, 3.4))[1]
    ax.plot(full, label="whole past", lw=1)
    ax.plot(range(train_len, len(cut)), cut[train_len:], label=f"only the last {train_len} characters", lw=1)
    ax.axvline(train_len, color="grey", lw=0.6, ls=":")
    ax.set(xlabel="position", ylabel="loss (nats/char)", title="loss at each position of 256-character windows")
    ax.legend(fontsize=8)
    if own_figure:
        ax.figure.tight_layout()
    return ax


__all__ = [
    "mean_pair_score",
    "plot_alibi",
    "plot_context_extension",
    "plot_extrapolation",
    "plot_position_loss",
    "plot_rope_rotation",
    "plot_sinusoidal",
    "plot_t5_buckets",
]
