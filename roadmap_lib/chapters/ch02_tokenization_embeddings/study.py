"""Chapter 02's experiments on tokenizers: corpus split, fertility, shipped tokenizers, display.

    python -m roadmap_lib build tokenizers   # writes data/tokenizers/*.json (a few minutes)

trains BPE, WordPiece and Unigram at several vocabulary sizes on the first 90% of the Jargon File
(data/jargon.txt), measures each on the held-out 10%, and writes ``fertility.json`` plus the
4k-vocabulary tokenizers as Hugging Face ``tokenizer.json`` files. Unigram is trained once at the
largest size, then each smaller vocabulary continues its EM and pruning from the previous one
(``UnigramTokenizer.shrink_to``), as its training passes through those sizes anyway.
Deterministic: the same command writes the same files.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

from roadmap_lib import DATA_DIR, data_path
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    UnigramTokenizer,
    WordPieceTokenizer,
    load,
)

KINDS = {"bpe": BPETokenizer, "wordpiece": WordPieceTokenizer, "unigram": UnigramTokenizer,
         "char": CharTokenizer}
SIZES = [500, 1000, 2000, 4000, 8000]
SHIPPED_SIZE = 4000
TOKENIZER_DIR = DATA_DIR / "tokenizers"


def corpus_split(train_fraction: float = 0.9) -> tuple[str, str]:
    """(train, held-out) halves of the Jargon File, cut at a line boundary."""
    text = data_path("jargon.txt").read_text(encoding="utf-8")
    cut = text.index("\n", int(len(text) * train_fraction)) + 1
    return text[:cut], text[cut:]


def train_tokenizer(kind: str, text: str, vocab_size: int) -> Tokenizer:
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {sorted(KINDS)}, got {kind!r}")
    if kind == "unigram":  # SentencePiece trains on sentences: one per line
        return UnigramTokenizer().train([ln for ln in text.splitlines() if ln.strip()], vocab_size)
    if kind == "bpe":
        return BPETokenizer().train(text, vocab_size, special_tokens=["<|endoftext|>"])
    return KINDS[kind]().train(text, vocab_size)


def fertility(tok: Tokenizer, text: str) -> dict:
    """Tokens per whitespace-separated word (fertility), characters per token, token count."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    n_tokens = sum(len(tok.encode(ln)) for ln in lines)
    n_words = sum(len(ln.split()) for ln in lines)
    n_chars = sum(len(ln) for ln in lines)
    return {"tokens": n_tokens, "words": n_words, "chars": n_chars,
            "fertility": n_tokens / n_words, "chars_per_token": n_chars / n_tokens}


def load_shipped(kind: str) -> Tokenizer:
    """A tokenizer shipped in data/tokenizers (built by ``build``)."""
    return load(data_path(f"tokenizers/{kind}_{SHIPPED_SIZE // 1000}k.json"))


def build(out: Path = TOKENIZER_DIR, sizes=SIZES, kinds=("bpe", "wordpiece", "unigram")) -> dict:
    """Train ``kinds`` at ``sizes``; update ``out/fertility.json`` (other kinds' rows are kept)."""
    train, held = corpus_split()
    results = {"corpus": "data/jargon.txt", "train_chars": len(train), "heldout_chars": len(held),
               "sizes": list(sizes), "fertility": {}, "train_seconds": {}}
    if (out / "fertility.json").exists():
        old = json.loads((out / "fertility.json").read_text(encoding="utf-8"))
        results["fertility"].update(old.get("fertility", {}))
        results["train_seconds"].update(old.get("train_seconds", {}))
    char = CharTokenizer().train(train)
    results["fertility"]["char"] = {str(char.vocab_size): fertility(char, held)}
    for kind in kinds:
        results["fertility"][kind], results["train_seconds"][kind] = {}, {}
        tok = None
        # Unigram prunes its way down: the smaller vocabularies continue from the larger one.
        for size in sorted(sizes, reverse=kind == "unigram"):
            t0 = time.perf_counter()
            if kind == "unigram" and tok is not None:
                tok = tok.shrink_to([ln for ln in train.splitlines() if ln.strip()], size)
            else:
                tok = train_tokenizer(kind, train, size)
            results["train_seconds"][kind][str(size)] = round(time.perf_counter() - t0, 2)
            results["fertility"][kind][str(size)] = fertility(tok, held)
            print(kind, size, results["fertility"][kind][str(size)]["fertility"], flush=True)
            if size == SHIPPED_SIZE:
                tok.save(out / f"{kind}_{size // 1000}k.json")
    atomic_write_text(out / "fertility.json", json.dumps(results, indent=1) + "\n")
    return results


# ----------------------------------------------------------------------------- display
_COLOURS = ["#fde2e4", "#d7e3fc", "#e2ece9", "#fff1c1", "#e9d5ff", "#cdeac0"]


def tokens_html(tokenizers: dict[str, Tokenizer], text: str) -> str:
    """An HTML table: for each tokenizer, ``text`` split into coloured pieces."""
    rows = []
    for name, tok in tokenizers.items():
        pieces = tok.tokenize(text)
        cells = "".join(
            f'<span style="background:{_COLOURS[k % len(_COLOURS)]};padding:1px 2px;'
            f'margin:1px;border-radius:3px;font-family:monospace;white-space:pre">'
            f"{html.escape(p.replace(chr(10), '↵'))}</span>" for k, p in enumerate(pieces))
        rows.append(f"<tr><td style='text-align:left'><b>{name}</b> ({len(pieces)})</td>"
                    f"<td style='text-align:left'>{cells}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def plot_tokens(tokenizers: dict[str, Tokenizer], text: str, ax=None):
    """The same view as :func:`tokens_html` drawn with matplotlib (for the static page)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(11, 0.7 * len(tokenizers) + 0.6))
    ax.set_axis_off()
    for row, (name, tok) in enumerate(tokenizers.items()):
        y = len(tokenizers) - row
        pieces = tok.tokenize(text)
        ax.text(0, y, f"{name} ({len(pieces)})", fontsize=9, fontweight="bold", va="center")
        x = 0.19
        for k, p in enumerate(pieces):
            label = p.replace("\n", "↵").replace(" ", "·")
            w = 0.0095 * max(len(label), 1) + 0.004
            if x + w > 1.0:
                break
            ax.text(x, y, label, fontsize=8, family="monospace", va="center",
                    bbox={"facecolor": _COLOURS[k % len(_COLOURS)], "edgecolor": "none",
                          "boxstyle": "round,pad=0.15"})
            x += w + 0.004
    ax.set_xlim(0, 1)
    ax.set_ylim(0.4, len(tokenizers) + 0.6)
    ax.set_title(f"How each tokenizer splits: {text[:60]!r}")
    return ax

