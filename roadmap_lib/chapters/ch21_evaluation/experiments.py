"""Chapter 21's sweep: the Jargon File multiple-choice benchmark scored by four models, on clean,
perturbed, training-split and leaked items, and a likelihood judge's swap test; 3 seeds (each seed
draws its own 100 items). A few minutes on one thread, so ``python -m roadmap_lib build
21-evaluation`` runs it once and the chapter reads ``data/21_evaluation.json``.
"""

from __future__ import annotations

import copy

import torch

from roadmap_lib.chapters.ch21_evaluation import benchmark as B
from roadmap_lib.evaluation import ngram_index, ngram_overlap
from roadmap_lib.quantization.linear import quantize_model
from roadmap_lib.zoo import load_char_gpt

SEEDS = (0, 1, 2)
N_ITEMS = 100
NGRAM = 5


def item_text(item) -> str:
    """An item's text for the contamination check: its context without the cut first word (a
    fragment that would not match anything), then the real phrase."""
    ctx = item.context.split(None, 1)
    return (ctx[1] if len(ctx) > 1 else "") + item.choices[item.gold]

PERTURBATIONS = (("typos", 0.1), ("typos", 0.2), ("typos", 0.4), ("truncate", 16), ("truncate", 4), ("upper", 1.0))
LEAK_EPOCHS = (1, 3)


def models() -> dict:
    """``{name: model}``: the zoo char GPT, the 1-layer draft model, and the char GPT with its
    linear layers rounded to 8 and to 4 bits (round-to-nearest, per output channel)."""
    model, vocab, _ = load_char_gpt()
    draft, _, _ = load_char_gpt("gpt-char-draft")
    return {"gpt-char-jargon": model, "gpt-char-draft": draft,
            "jargon-int8": quantize_model(copy.deepcopy(model), "rtn", bits=8),
            "jargon-int4": quantize_model(copy.deepcopy(model), "rtn", bits=4)}, vocab


def _lists(d: dict) -> dict:
    return {k: v.tolist() for k, v in d.items() if k != "logliks"}


def run_study(seeds=SEEDS, n_items: int = N_ITEMS, *, parts=("models", "train", "perturb", "leak", "judge"),
              model_names=None, progress: bool = False) -> dict:
    """Every measurement of the chapter, as plain lists (JSON): per-item 0/1 ``acc`` / ``acc_norm``.
    ``parts`` and ``model_names`` (default: all of :func:`models`) select a subset (verify's re-run).
    Items are drawn one after another from a seeded stream, so ``n_items=50`` gives the first 50
    items of ``n_items=100``."""
    from tqdm.auto import tqdm

    nets, vocab = models()
    base = nets["gpt-char-jargon"]
    score = B.scorer(base, vocab)
    index = ngram_index(B.split_text("train"), NGRAM) if "train" in parts or "leak" in parts else None
    out = {"seeds": list(seeds), "n_items": n_items, "ngram": NGRAM, "models": {}, "logliks": {}, "train": {},
           "overlap": {}, "perturb": {}, "leak": {}, "judge": {}}
    for seed in tqdm(seeds, disable=not progress, desc="seeds"):
        items = B.build_items("val", n_items, seed)
        key = str(seed)
        if "models" in parts:
            for name, net in nets.items():
                if model_names is not None and name not in model_names:
                    continue
                r = B.scorer(net, vocab)(items)
                out["models"].setdefault(name, {})[key] = _lists(r)
                if name in ("gpt-char-jargon", "gpt-char-draft"):
                    out["logliks"].setdefault(name, {})[key] = [ll.tolist() for ll in r["logliks"]]
        if "train" in parts:
            train_items = B.build_items("train", n_items, seed)
            out["train"][key] = _lists(score(train_items))
            out["overlap"][key] = {
                "val": [ngram_overlap(item_text(it), index, NGRAM) for it in items],
                "train": [ngram_overlap(item_text(it), index, NGRAM) for it in train_items]}
        if "perturb" in parts:
            for kind, strength in PERTURBATIONS:
                out["perturb"].setdefault(f"{kind}:{strength:g}", {})[key] = _lists(
                    score(B.perturb(items, kind, strength, seed)))
        if "leak" in parts:
            leaked, clean = items[: n_items // 2], items[n_items // 2:]
            leaked_index = index | ngram_index([item_text(it) for it in leaked], NGRAM)
            out["leak"].setdefault("overlap", {})[key] = [
                ngram_overlap(item_text(it), leaked_index, NGRAM) for it in items]
            for epochs in LEAK_EPOCHS:
                torch.manual_seed(seed)
                net = B.leak(copy.deepcopy(base), vocab, leaked, epochs=epochs, seed=seed)
                s = B.scorer(net, vocab)
                out["leak"].setdefault(str(epochs), {})[key] = {"leaked": _lists(s(leaked)), "clean": _lists(s(clean))}
        if "judge" in parts:
            for kind in ("real", "tie"):
                ab, ba = B.run_judge(base, vocab, items, kind)
                out["judge"].setdefault(kind, {})[key] = {"ab": ab.tolist(), "ba": ba.tolist()}
    return out


def pooled(per_seed: dict, metric: str) -> torch.Tensor:
    """Per-item values of ``metric`` over all seeds, concatenated -> ``(n_seeds * n_items,)``."""
    return torch.tensor([v for key in sorted(per_seed) for v in per_seed[key][metric]], dtype=torch.float64)


def seed_means(per_seed: dict, metric: str) -> list[float]:
    """The mean of ``metric`` per seed, in seed order."""
    return [sum(per_seed[k][metric]) / len(per_seed[k][metric]) for k in sorted(per_seed)]


__all__ = ["LEAK_EPOCHS", "NGRAM", "N_ITEMS", "PERTURBATIONS", "SEEDS", "item_text", "models", "pooled", "run_study", "seed_means"]
