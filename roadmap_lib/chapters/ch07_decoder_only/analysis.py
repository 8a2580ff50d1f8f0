"""Looking at a trained language model: samples, and what decoding settings do.

Used by chapter 07 (decoder-only models): :func:`sample_stats` measures generated text (how many words
exist in the corpus, how repetitive it is); :func:`temperature_sweep` runs the experiment;
:func:`plot_next_token_distribution` shows what temperature, top-k and top-p do to one step.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import torch

from roadmap_lib.generation import filter_logits, next_token_logits, sample

_WORD = re.compile(r"[A-Za-z]+")


def corpus_words(text: str) -> set[str]:
    """Lower-cased alphabetic words of a corpus."""
    return {w.lower() for w in _WORD.findall(text)}


def sample_stats(text: str, vocabulary: set[str], n: int = 4) -> dict[str, float]:
    """``word_rate``: fraction of the words in ``text`` that occur in ``vocabulary``;
    ``distinct``: distinct character ``n``-grams / all ``n``-grams (low = repetitive)."""
    words = [w.lower() for w in _WORD.findall(text)]
    grams = [text[i : i + n] for i in range(len(text) - n + 1)]
    return {
        "word_rate": sum(w in vocabulary for w in words) / max(1, len(words)),
        "distinct": len(set(grams)) / max(1, len(grams)),
    }


def temperature_sweep(model, vocab, prompts: list[str], temperatures: list[float], *,
                      new_tokens: int = 200, seed: int = 0, vocabulary: set[str],
                      top_p: float | None = None) -> list[dict]:
    """Sample ``new_tokens`` characters after each prompt at each temperature; average the stats.

    All (temperature, prompt) pairs are sampled as one batch, each prompt cropped to the last
    characters of the shortest. Returns one row per temperature: ``temperature``, ``word_rate``,
    ``distinct`` and ``sample`` (the text generated after the first prompt).
    """
    n = min(len(p) for p in prompts)
    prompt_ids = torch.stack([vocab.encode(p[-n:]) for p in prompts])
    ids = prompt_ids.repeat(len(temperatures), 1)  # rows: t0 p0, t0 p1, ..., t1 p0, ...
    temps = torch.tensor(temperatures).repeat_interleave(len(prompts))
    g = torch.Generator().manual_seed(seed)
    out = sample(model, ids, new_tokens, temperature=temps, top_p=top_p, generator=g,
                 context_length=model.config.context_length)
    texts = [vocab.decode(row[n:]) for row in out]
    rows = []
    for i, t in enumerate(temperatures):
        group = texts[i * len(prompts) : (i + 1) * len(prompts)]
        stats = [sample_stats(x, vocabulary) for x in group]
        rows.append({"temperature": t, "sample": group[0],
                     **{k: sum(s[k] for s in stats) / len(stats) for k in stats[0]}})
    return rows


def plot_sweep(rows: list[dict], ax=None):
    """Word rate and n-gram diversity against temperature (rows from :func:`temperature_sweep`)."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    ts = [r["temperature"] for r in rows]
    ax.plot(ts, [r["word_rate"] for r in rows], "o-", label="words found in the corpus")
    ax.plot(ts, [r["distinct"] for r in rows], "s-", label="distinct 4-grams / all 4-grams")
    ax.set_xlabel("temperature")
    ax.set_ylabel("fraction")
    ax.set_ylim(0, 1.05)
    ax.set_title("Sampling temperature: fidelity against diversity")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_next_token_distribution(model, vocab, prompt: str, *, temperature: float = 1.0,
                                 top_k: int | None = None, top_p: float | None = None,
                                 show: int = 20, ax=None, logits: torch.Tensor | None = None):
    """Bar chart of the next-character probabilities after ``prompt``, after filtering."""
    if logits is None:
        logits = next_token_logits(model, vocab.encode(prompt)[None], model.config.context_length)[0]
    base = logits.softmax(-1)
    probs = filter_logits(logits[None], temperature=temperature, top_k=top_k, top_p=top_p)[0].softmax(-1)
    order = base.argsort(descending=True)[:show]
    labels = [repr(vocab.chars[i])[1:-1] or " " for i in order.tolist()]
    ax = ax or plt.subplots(figsize=(8, 3.2))[1]
    x = torch.arange(len(order))
    ax.bar(x - 0.2, base[order], width=0.4, label="model (T = 1, unfiltered)", color="lightgray")
    ax.bar(x + 0.2, probs[order], width=0.4, label="after temperature / top-k / top-p",
           color="tab:purple")
    ax.set_xticks(x, [lbl.replace(" ", "␣") for lbl in labels])
    ax.set_xlabel(f"next character after {prompt[-20:]!r}")
    ax.set_ylabel("probability")
    kept = int((probs > 0).sum())
    ax.set_title(f"T = {temperature}, top-k = {top_k}, top-p = {top_p}: {kept} characters can be drawn")
    ax.legend()
    return ax


__all__ = [
    "corpus_words",
    "plot_next_token_distribution",
    "plot_sweep",
    "sample_stats",
    "temperature_sweep",
]
