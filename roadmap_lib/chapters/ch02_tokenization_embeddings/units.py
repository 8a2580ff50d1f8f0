"""Characters or subwords? Chapter 02's comparison of the unit a language model predicts.

The same :class:`~.embeddings.TinyLM` is trained on the Jargon File once on characters and once on
byte-level BPE tokens (1,024 tokens, the chapter's tokenizer). A fair comparison gives both the
same *characters* of context: BPE sees 16 tokens, which span ``16 * chars_per_token`` characters
on average, so the character model sees that many characters (:func:`equal_context`). Both take
the same number of steps on the same number of windows per step, and both are scored on the same
held-out text in bits per character.

The runs (3 seeds, a few thousand steps each) take longer than the chapter's budget, so

    python -m roadmap_lib build 02-units

writes ``data/02_units.json``: the held-out bits per character every ``EVAL_EVERY`` steps of every
run, and the two 400-step runs the chapter trains live (``SHORT``), so the chapter can check that
its own numbers equal the recorded ones.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from roadmap_lib import DATA_DIR
from roadmap_lib.chapters.ch02_tokenization_embeddings.embeddings import (
    TinyLM,
    TinyLMConfig,
    bits_per_char,
    train_lm,
)
from roadmap_lib.chapters.ch02_tokenization_embeddings.study import corpus_split
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import count_parameters, cpu_threads
from roadmap_lib.tokenizers import BPETokenizer, CharTokenizer

RESULTS_FILE = "02_units.json"
BPE_VOCAB = 1024
BPE_CONTEXT = 16  # tokens
HELD_CHARS = 40_000  # the first 40k characters of the held-out split
SHORT_TRAIN_CHARS = 600_000  # the chapter's live runs train on the first 600k characters
SHORT_STEPS = 400
STEPS = 2500
EVAL_EVERY = 250
SEEDS = (0, 1, 2)
BATCH = 128
LR = 3e-3


def tokenizers(train_text: str) -> dict:
    """The chapter's two tokenizers, trained on ``train_text``: ``{"char": ..., "bpe": ...}``."""
    return {"char": CharTokenizer().train(train_text),
            "bpe": BPETokenizer().train(train_text, BPE_VOCAB, special_tokens=["<|endoftext|>"])}


def equal_context(chars_per_token: float, tokens: int = BPE_CONTEXT) -> int:
    """Characters of context that match ``tokens`` BPE tokens of ``chars_per_token`` each."""
    if not chars_per_token > 0:
        raise ValueError(f"chars_per_token: expected a positive number, got {chars_per_token!r}")
    if not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens: expected a positive int, got {tokens!r}")
    return max(1, round(tokens * chars_per_token))


def train_and_score(tok, train_ids: torch.Tensor, held_ids: torch.Tensor, n_held_chars: int, *,
                    context: int, steps: int, seed: int, eval_every: int = 0,
                    progress: bool = True, **config) -> tuple[TinyLM, list[float], list[tuple[int, float]]]:
    """Train a TinyLM from seed ``seed`` on ``train_ids`` for ``steps`` steps.

    Returns ``(model, training losses per step, [(step, held-out bpc), ...])``; the held-out bits
    per character are measured every ``eval_every`` steps (0: only at the end).
    """
    torch.manual_seed(seed)
    model = TinyLM(TinyLMConfig(tok.vocab_size, context=context, **config))
    curve: list[tuple[int, float]] = []

    def score(step: int) -> None:
        curve.append((step, bits_per_char(model, held_ids, n_held_chars)))

    callback = score if eval_every else None
    losses = train_lm(model, train_ids, steps=steps, batch=BATCH, lr=LR, seed=seed,
                      eval_every=eval_every, callback=callback, progress=progress)
    if not curve or curve[-1][0] != steps:
        score(steps)
    return model, losses, curve


def run_all(steps: int = STEPS, seeds=SEEDS, eval_every: int = EVAL_EVERY) -> dict:
    """The whole comparison (see the module docstring); a dict ready for JSON."""
    start = time.perf_counter()
    train_text, held_text = corpus_split()
    held = held_text[:HELD_CHARS]
    toks = tokenizers(train_text)
    ids = {k: torch.tensor(t.encode(train_text)) for k, t in toks.items()}
    held_ids = {k: torch.tensor(t.encode(held)) for k, t in toks.items()}
    chars_per_token = len(train_text) / len(ids["bpe"])
    char_context = equal_context(chars_per_token)
    configs = {"bpe": ("bpe", BPE_CONTEXT), "char": ("char", char_context)}
    runs = []
    with cpu_threads(1):
        for seed in seeds:
            for name, (unit, context) in configs.items():
                model, _, curve = train_and_score(
                    toks[unit], ids[unit], held_ids[unit], len(held), context=context,
                    steps=steps, seed=seed, eval_every=eval_every, progress=False)
                runs.append({"name": name, "unit": unit, "context": context, "seed": seed,
                             "params": count_parameters(model),
                             "curve": [[s, round(b, 6)] for s, b in curve]})
                print(name, seed, curve[-1], flush=True)
        short = {}
        for unit in ("char", "bpe"):  # the chapter's live runs, for its consistency check
            t_ids = torch.tensor(toks[unit].encode(train_text[:SHORT_TRAIN_CHARS]))
            _, _, curve = train_and_score(toks[unit], t_ids, held_ids[unit], len(held),
                                          context=BPE_CONTEXT, steps=SHORT_STEPS, seed=0,
                                          progress=False)
            short[unit] = round(curve[-1][1], 6)
    return {"recipe": {"bpe_vocab": BPE_VOCAB, "bpe_context_tokens": BPE_CONTEXT,
                       "char_context_chars": char_context,
                       "train_chars_per_bpe_token": round(chars_per_token, 4),
                       "steps": steps, "eval_every": eval_every, "batch": BATCH, "lr": LR,
                       "schedule": "AdamW, one-cycle (10% warm-up, cosine decay)",
                       "train": "data/jargon.txt, first 90% (corpus_split)",
                       "held_out": f"first {HELD_CHARS} characters of the last 10%"},
            "seeds": list(seeds), "runs": runs,
            "short_400_steps_context_16_seed_0": short,
            "seconds": round(time.perf_counter() - start, 1), "torch": torch.__version__,
            "command": "python -m roadmap_lib build 02-units"}


def load_results(path: Path | None = None) -> dict:
    path = path or DATA_DIR / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: build it with `python -m roadmap_lib build 02-units`")
    return json.loads(path.read_text(encoding="utf-8"))


def curves(info: dict) -> dict[str, torch.Tensor]:
    """``{name: (seeds, evals) tensor of held-out bpc}`` and ``"steps"``: the evaluation steps."""
    out: dict[str, torch.Tensor] = {}
    for name in dict.fromkeys(r["name"] for r in info["runs"]):
        rows = sorted((r for r in info["runs"] if r["name"] == name), key=lambda r: r["seed"])
        out[name] = torch.tensor([[b for _, b in r["curve"]] for r in rows])
        out["steps"] = torch.tensor([s for s, _ in rows[0]["curve"]])
    return out


def write(root: Path) -> None:
    atomic_write_text(root / RESULTS_FILE, json.dumps(run_all(), indent=1) + "\n")


def plot_curves(info: dict, axes=None):
    """Held-out bpc against steps and against characters of training text, every seed drawn."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    c = curves(info)
    steps = c["steps"].float()
    cpt = info["recipe"]["train_chars_per_bpe_token"]
    labels = {"char": f"characters, {info['recipe']['char_context_chars']}-character context",
              "bpe": f"BPE 1k, {info['recipe']['bpe_context_tokens']}-token context"}
    for colour, name in zip(("C0", "C1"), ("char", "bpe")):
        chars_seen = steps * info["recipe"]["batch"] * (cpt if name == "bpe" else 1.0) / 1e6
        for k, row in enumerate(c[name]):
            for ax, x in zip(axes, (steps, chars_seen)):
                ax.plot(x, row, color=colour, alpha=0.8, marker=".",
                        label=labels[name] if k == 0 else None)
    axes[0].set_xlabel("training step (128 windows per step)")
    axes[1].set_xlabel("characters of training text seen (millions)")
    for ax in axes:
        ax.set_ylabel("held-out bits per character")
        ax.legend()
    axes[0].set_title("Same steps, same characters of context")
    axes[1].set_title("... against the text each has read")
    return axes
