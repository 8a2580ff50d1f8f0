"""Figures for chapter 08: noised sentences as token strips, T5's buckets, pretraining and fine-tuning."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from roadmap_lib.positional import t5_relative_position_bucket

COLORS = {"span": "tab:blue", "denoise": "tab:orange", "scratch": "tab:gray"}
LABELS = {"span": "T5 span corruption", "denoise": "BART text infilling", "scratch": "from scratch"}


def plot_token_rows(rows: list[tuple[str, list[str]]], ax=None, title: str = "", per_line: int = 16):
    """One labelled strip of word boxes per ``(label, words)``; sentinels and ``<mask>`` are shaded."""
    if not rows:
        raise ValueError("rows: expected at least one (label, words) row, got none")
    lines = [(label if k == 0 else "", words[k:k + per_line])
             for label, words in rows for k in range(0, max(len(words), 1), per_line)]
    boxes, right = [], 8.0  # (x centre, y, word); one data unit is about half an inch
    for y, (_, words) in enumerate(lines):
        x = 0.0
        for w in words:
            width = 0.15 * len(w) + 0.3
            boxes.append((x + width / 2, -y, w))
            x += width + 0.1
        right = max(right, x)
    ax = ax or plt.subplots(figsize=(0.5 * (right + 3.5), 0.45 * len(lines) + 0.8))[1]
    for y, (label, _) in enumerate(lines):
        ax.text(-0.2, -y, label, ha="right", va="center", fontsize=9, weight="bold")
    for x, y, w in boxes:
        special = w.startswith("<") and w.endswith(">")
        ax.text(x, y, w, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.25", "fc": "gold" if special else "whitesmoke",
                      "ec": "gray", "lw": 0.5})
    ax.set(xlim=(-3.5, right), ylim=(-len(lines) + 0.4, 0.6), title=title)
    ax.axis("off")
    return ax


def plot_buckets(num_buckets: int = 16, max_distance: int = 32, span: int = 48, ax=None):
    """T5's bucket of each distance ``key - query`` in ``[-span, span]``, encoder and decoder."""
    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    rel = torch.arange(-span, span + 1)
    for bidirectional, label in ((True, "encoder (bidirectional)"), (False, "decoder (causal)")):
        b = t5_relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
        ax.step(rel.numpy(), b.numpy(), where="mid", label=label)
    ax.axvline(-max_distance, color="gray", ls=":", lw=1)
    ax.axvline(max_distance, color="gray", ls=":", lw=1, label=f"±max_distance = {max_distance}")
    ax.set(xlabel="relative position (key − query)", ylabel="bucket",
           title=f"T5 relative position buckets ({num_buckets} buckets)")
    ax.legend(fontsize=8)
    return ax


@torch.no_grad()
def learned_bias(model, span: int = 20) -> torch.Tensor:
    """A T5 model's learned encoder bias for every head against the distance ``key - query`` in
    ``[-span, span]``: ``(heads, 2 * span + 1)``."""
    return model.encoder_bias(2 * span + 1)[0, :, span]  # the middle query's row: (heads, keys)


def plot_learned_bias(bias: torch.Tensor, ax=None):
    """Draw :func:`learned_bias`'s ``(heads, 2 * span + 1)`` table, one line per head."""
    if bias.ndim != 2 or bias.shape[1] % 2 != 1:
        raise ValueError(f"bias: expected (heads, 2 * span + 1), got shape {tuple(bias.shape)}")
    ax = ax if ax is not None else plt.subplots(figsize=(7, 3.5))[1]
    span = bias.shape[1] // 2
    rel = torch.arange(-span, span + 1)
    for h in range(bias.shape[0]):
        ax.plot(rel.numpy(), bias[h].numpy(), ".-", label=f"head {h}")
    ax.set(xlabel="relative position (key − query)", ylabel="learned bias added to the score",
           title="Learned T5 encoder position bias")
    ax.legend(fontsize=8)
    return ax


def plot_pretraining(records: dict[str, dict], axes=None):
    """Left: training and validation loss per step, one colour per objective. Right: tokens the
    encoder and the decoder read during pretraining (same sentences, different targets)."""
    axes = axes if axes is not None else plt.subplots(1, 2, figsize=(12, 3.8))[1]
    for objective, record in records.items():
        log = record["log"]
        c = COLORS[objective]
        axes[0].plot([r["step"] for r in log], [r["loss"] for r in log], lw=0.7, alpha=0.5, color=c)
        val = [r for r in log if "val_loss" in r]
        axes[0].plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", ms=3, color=c,
                     label=f"{LABELS[objective]} (validation)")
    axes[0].set(xlabel="optimiser step", ylabel="cross-entropy (nats / target word)", yscale="log",
                title="Pretraining, same model and budget (thin: train)")
    axes[0].legend(fontsize=8)
    names = list(records)
    for k, side in enumerate(("src", "tgt")):
        axes[1].bar([i + 0.38 * k for i in range(len(names))],
                    [records[n]["tokens_seen"][side] / 1e6 for n in names], width=0.38,
                    label={"src": "encoder (input) tokens", "tgt": "decoder (target) tokens"}[side])
    axes[1].set_xticks([i + 0.19 for i in range(len(names))], [LABELS[n] for n in names])
    axes[1].set(ylabel="millions of tokens", title="Tokens read in pretraining")
    axes[1].legend(fontsize=8)
    return axes


def plot_finetuning(records: dict[str, dict], baseline: dict | None = None, axes=None):
    """Left: multitask validation loss per step for each initialisation. Right: test scores, with
    ``baseline`` (e.g. the scores of copying the input) as black ticks."""
    axes = axes if axes is not None else plt.subplots(1, 2, figsize=(12, 3.8))[1]
    for init, record in records.items():
        val = [r for r in record["log"] if "val_loss" in r]
        axes[0].plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", ms=3,
                     color=COLORS[init], label=LABELS[init])
    axes[0].set(xlabel="optimiser step", ylabel="validation cross-entropy", yscale="log",
                title="Multitask fine-tuning (both tasks in every batch)")
    axes[0].legend(fontsize=8)
    metrics = [("bleu", "translation\nBLEU"), ("fix_bleu", "word order\nBLEU"),
               ("exact_match", "word order\nexact match (%)")]
    names = list(records)
    w = 0.8 / len(names)
    for k, init in enumerate(names):
        values = [records[init]["test"][m] for m, _ in metrics]
        bars = axes[1].bar([i + w * k for i in range(len(metrics))], values, width=w,
                           color=COLORS[init], label=LABELS[init])
        axes[1].bar_label(bars, fmt="%.1f", fontsize=7)
    for i, (m, _) in enumerate(metrics):
        if baseline and m in baseline:
            axes[1].hlines(baseline[m], i - w / 2, i + w * (len(names) - 0.5), color="black", lw=2,
                           label="copy the input" if i == 1 else None)
    axes[1].set_xticks([i + w * (len(names) - 1) / 2 for i in range(len(metrics))], [m for _, m in metrics])
    axes[1].set(ylabel="score", title="Test scores (greedy decoding, 200 rows per task)")
    axes[1].legend(fontsize=8)
    return axes


def plot_diagnosis(info: dict, shipped_loss: float, axes=None):
    """Left: the loss of our T5 trained on ONE fixed batch (from ``info["overfit"]``). Right: loss
    per hidden word on the validation sentences: the word prior, the count-based baselines, the
    shipped span model (``shipped_loss``, 1,500 steps) and our T5 / transformers' T5 after the
    same shortened recipe (``info["same_budget"]``)."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1, 1.4]})
    log = info["overfit"]["log"]
    axes[0].plot([r["step"] for r in log], [r["loss"] for r in log], "o-", color=COLORS["span"])
    axes[0].set(xlabel="step (Adam, one fixed batch of 64 noised sentences)", ylabel="loss per target token",
                title="Our T5 can fit span-corruption targets", ylim=(0, None))
    b, sb = info["baselines"], info["same_budget"]
    bars = {"word prior\n(entropy)": info["prior"], "unigram": b["unigram"], "left\nbigram": b["left_bigram"],
            "right\nbigram": b["right_bigram"], "shipped\n(1,500 steps)": shipped_loss,
            f"ours\n({sb['steps']} steps)": sb["ours"]["hidden"]["loss"],
            f"transformers\n({sb['steps']} steps)": sb["transformers"]["hidden"]["loss"]}
    colors = ["lightgray", "gray", "tab:green", "tab:green", COLORS["span"], COLORS["span"], "tab:purple"]
    axes[1].bar(range(len(bars)), list(bars.values()), color=colors)
    axes[1].set_xticks(range(len(bars)), list(bars), fontsize=8)
    axes[1].axhline(info["prior"], color="k", lw=0.8, ls="--")
    lo = min(bars.values())
    axes[1].set(ylim=(lo - 0.5, max(bars.values()) + 0.2), ylabel="nats per hidden word",
                title="Loss on the hidden words (validation sentences)")
    plt.tight_layout()
    return axes


__all__ = ["plot_buckets", "plot_diagnosis", "plot_finetuning", "learned_bias", "plot_learned_bias", "plot_pretraining", "plot_token_rows"]
