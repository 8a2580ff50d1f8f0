"""Chapter 18's figures: the quality-diversity frontier, repetition under penalties, accuracy against
temperature, agreement as a detector of wrong answers, and one decoding step under a pipeline."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from roadmap_lib.chapters.ch18_decoding_generation.experiments import mean_over_seeds
from roadmap_lib.generation import next_token_logits
from roadmap_lib.logits_processors import make_pipeline

_MARKERS = {"temperature": "o", "top-k": "s", "top-p": "^", "min-p": "D", "typical": "v"}


def plot_frontier(rows: list[dict], ax=None, highlight: tuple[str, float] | None = None):
    """Word share (quality) against distinct-2 (diversity), one line per method, error bars = std
    over replicates; values annotated."""
    ax = ax or plt.subplots(figsize=(7.5, 4.8))[1]
    ws, d2 = mean_over_seeds(rows, "word_share"), mean_over_seeds(rows, "distinct2")
    for method, marker in _MARKERS.items():
        keys = [k for k in ws if k[0] == method]
        if not keys:
            continue
        xs, ys = [d2[k][0] for k in keys], [ws[k][0] for k in keys]
        line = ax.errorbar(xs, ys, xerr=[d2[k][1] for k in keys], yerr=[ws[k][1] for k in keys],
                           marker=marker, capsize=2, label=method, alpha=0.85)
        for k, x, y in zip(keys, xs, ys):
            ax.annotate(f"{k[1]:g}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7,
                        color=line[0].get_color())
    if highlight is not None and highlight in ws:
        ax.plot(d2[highlight][0], ws[highlight][0], "o", ms=14, mfc="none", mec="k")
    ax.set_xlabel("diversity: distinct word bigrams among 4 samples of one prompt")
    ax.set_ylabel("quality: share of words found in the corpus")
    ax.set_title("Quality against diversity (mean ± std over 3 sample sets)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_repetition(rows: list[dict], ax=None):
    """Per setting: repeated 8-grams and word share, one dot per prompt set, bar = mean."""
    ax = ax or plt.subplots(figsize=(8, 3.6))[1]
    names = list(dict.fromkeys(r["setting"] for r in rows))
    for key, offset, color, label in (("repeated", -0.18, "tab:red", "repeated 8-grams"),
                                      ("word_share", 0.18, "tab:blue", "words found in the corpus")):
        means = []
        for i, n in enumerate(names):
            vals = [r[key] for r in rows if r["setting"] == n]
            means.append(sum(vals) / len(vals))
            ax.plot([i + offset] * len(vals), vals, ".", color="k", ms=4)
        ax.bar([i + offset for i in range(len(names))], means, width=0.34, color=color, alpha=0.6, label=label)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel("share")
    ax.set_ylim(0, 1.2)
    ax.set_title("Greedy decoding and the penalties (dots: 3 prompt sets)")
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    return ax


def plot_accuracy_vs_temperature(temperatures, expected, sampled: dict[float, list[float]], baseline: float,
                                 ax=None):
    """Exact expected accuracy against temperature (line), sampled accuracy (dots: seeds), and the
    majority-class baseline."""
    ax = ax or plt.subplots(figsize=(6, 3.6))[1]
    ax.plot(temperatures, expected, "-", label="expected accuracy (exact)")
    for t, accs in sampled.items():
        ax.plot([t] * len(accs), accs, "k.", label="one sample per fact (3 seeds)" if t == min(sampled) else None)
    ax.axhline(baseline, color="gray", ls="--", label="always answer 'n.'")
    ax.set_xlabel("sampling temperature")
    ax.set_ylabel("answers equal to the corpus")
    ax.set_ylim(0, 1)
    ax.set_title("Part of speech of 120 Jargon File headwords")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def plot_agreement(results: list[dict], ax=None):
    """Histogram of agreement (share of k samples giving the majority answer), for facts whose
    majority answer is right and wrong, pooled over seeds."""
    ax = ax or plt.subplots(figsize=(6, 3.4))[1]
    right = [a for r in results for a, w in zip(r["agreement"], r["wrong"]) if not w]
    wrong = [a for r in results for a, w in zip(r["agreement"], r["wrong"]) if w]
    bins = [i / 10 + 0.05 for i in range(1, 11)]
    ax.hist([right, wrong], bins=bins, label=["majority answer right", "majority answer wrong"],
            color=["tab:green", "tab:red"], alpha=0.8)
    ax.set_xlabel("agreement among the samples")
    ax.set_ylabel("facts (3 seeds pooled)")
    ax.set_title("Self-consistency: wrong answers agree less")
    ax.legend(fontsize=8)
    return ax


def plot_step(model, vocab, prompt: str, *, show: int = 16, ax=None, logits: torch.Tensor | None = None,
              **pipeline):
    """The next-character distribution after ``prompt``, raw and after ``make_pipeline(**pipeline)``
    (penalties see the prompt as history)."""
    ids = vocab.encode(prompt)[None]
    if logits is None:
        logits = next_token_logits(model, ids, model.config.context_length)
    base = logits[0].softmax(-1)
    after = make_pipeline(**pipeline)(ids, logits.clone())[0].softmax(-1)
    order = torch.maximum(base, after).argsort(descending=True)[:show]
    labels = [repr(vocab.chars[i])[1:-1].replace(" ", "␣") for i in order.tolist()]
    ax = ax or plt.subplots(figsize=(8, 3.2))[1]
    x = list(range(len(order)))
    ax.bar([i - 0.2 for i in x], base[order].tolist(), width=0.4, color="lightgray", label="model")
    ax.bar([i + 0.2 for i in x], after[order].tolist(), width=0.4, color="tab:purple", label="after the pipeline")
    ax.set_xticks(x, labels)
    ax.set_ylabel("probability")
    on = ", ".join(f"{k}={v}" for k, v in pipeline.items() if v) or "nothing"
    ax.set_title(f"Next character after {prompt[-24:]!r}: {int((after > 0).sum())} can be drawn ({on})",
                 fontsize=9)
    ax.legend(fontsize=8)
    return ax


__all__ = ["plot_accuracy_vs_temperature", "plot_agreement", "plot_frontier", "plot_repetition", "plot_step"]
