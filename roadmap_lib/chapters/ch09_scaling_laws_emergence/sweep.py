"""The scaling sweep: tiny character GPTs of 15 sizes trained on data/jargon.txt.

Every model sees the same protocol: context 32, batch 16 (512 characters a step), AdamW at a
constant learning rate after a short warmup (Kaplan et al.'s setting, so that the validation loss
at step s is the loss of a run "trained on s·512 characters"; Hoffmann et al. retune a cosine
schedule per budget instead, which this budget cannot afford), 600 steps per size (the six smallest
train longer, up to 3000 steps, so that small models reach the larger compute budgets), every size
with the three seeds in ``SEEDS``: one seed's curve differs from another's by about as much as
neighbouring sizes do, so the analysis reads the mean over the seeds (:func:`main_runs`). After
STEPS steps each model is scored per character on fixed validation windows: log-likelihood,
accuracy of the greedy next character, and exact match of k consecutive characters (all k greedy
predictions right, which is exactly "greedy decoding reproduces the next k characters").
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from roadmap_lib.data import CharLMData
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import map_runs
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.scaling import gpt_matmul_flops, gpt_param_counts
from roadmap_lib.training import TrainConfig, train

FILE = "09_scaling_sweep.json"
CONTEXT, BATCH, STEPS, EVAL_INTERVAL, EVAL_BATCHES = 32, 16, 600, 50, 8
LR, WARMUP = 3e-3, 30
#: (n_layers, d_model), ordered by non-embedding parameters; head size 8
SIZES = [(1, 8), (1, 12), (1, 16), (2, 12), (2, 16), (1, 24), (3, 16), (2, 24), (1, 40),
         (3, 24), (2, 32), (4, 24), (3, 32), (2, 48), (3, 48)]
SEEDS = (0, 1, 2)  # every size, every seed: the analysis reads the mean over seeds
#: the smallest sizes train longer (every seed), so that IsoFLOP profiles reach small models
LONGER = {(1, 8): 3000, (1, 12): 2400, (1, 16): 1800, (2, 12): 1800, (2, 16): 1200, (1, 24): 1200}
EXACT_K = (1, 2, 4, 8, 16)
SCORE_BATCHES, SCORE_SEED = 16, 4321


def config(n_layers: int, d_model: int, vocab_size: int) -> GPTConfig:
    return GPTConfig(vocab_size=vocab_size, context_length=CONTEXT, d_model=d_model,
                     n_layers=n_layers, n_heads=max(1, d_model // 8))


def data() -> CharLMData:
    return CharLMData(context=CONTEXT, batch_size=BATCH)


@torch.no_grad()
def score(model: GPT, lm: CharLMData, batches: int = SCORE_BATCHES, seed: int = SCORE_SEED) -> dict:
    """Per-character scores on fixed validation windows: mean log-likelihood (nats), greedy
    accuracy, and exact match of k consecutive characters for k in EXACT_K."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    logp, correct = [], []
    for _ in range(batches):
        x, y = lm.get_batch("val", g)
        lp = torch.log_softmax(model(x), -1)
        logp.append(lp.gather(-1, y[..., None])[..., 0])
        correct.append(lp.argmax(-1) == y)
    logp, correct = torch.cat(logp), torch.cat(correct)
    out = {"log_likelihood": logp.mean().item(), "accuracy": correct.float().mean().item()}
    for k in EXACT_K:
        out[f"exact_{k}"] = correct.unfold(1, k, 1).all(-1).float().mean().item()
    return out


def run(n_layers: int, d_model: int, *, seed: int = 0, steps: int = STEPS, lm: CharLMData | None = None,
        progress: bool = False) -> dict:
    """Train one size for ``steps`` steps of the protocol; returns its record (curve and scores)."""
    lm = lm or data()
    cfg = config(n_layers, d_model, len(lm.vocab.chars))
    torch.manual_seed(seed)
    model = GPT(cfg)
    tc = TrainConfig(max_steps=max(steps, STEPS), lr=LR, min_lr_ratio=1.0, warmup_steps=WARMUP,
                     eval_interval=EVAL_INTERVAL, eval_batches=EVAL_BATCHES, seed=seed, progress=progress)
    if steps <= STEPS:
        result = train(model, lm.get_batch, tc, stop_at=steps)
        scores = score(model, lm)
    else:  # score at STEPS like every size, then resume (bit for bit) to the longer budget
        with tempfile.TemporaryDirectory() as tmp:
            tc.checkpoint_path = str(Path(tmp) / "state.pt")
            first = train(model, lm.get_batch, tc, stop_at=STEPS)
            scores = score(model, lm)
            result = train(model, lm.get_batch, tc, resume_from=tc.checkpoint_path)
            result.seconds += first.seconds
    val_steps, val = result.series("val_loss")
    counts = gpt_param_counts(cfg)
    return {"n_layers": n_layers, "d_model": d_model, "seed": seed,
            "non_embedding": counts["non_embedding"], "total": counts["total"],
            "matmul_flops_per_step": gpt_matmul_flops(cfg, BATCH, CONTEXT),
            "val_steps": val_steps, "val_loss": [round(v, 5) for v in val],
            "train_loss": [round(r["loss"], 4) for r in result.log[9::10]],
            "scores": scores, "seconds": round(result.seconds, 2)}


def _cell(cell: tuple[int, int, int]) -> dict:
    n_layers, d_model, seed = cell
    return run(n_layers, d_model, seed=seed, steps=LONGER.get((n_layers, d_model), STEPS))


def build(path: Path, progress: bool = True, jobs: int = 1) -> dict:
    """Run the whole sweep (every size x every seed, one thread per run, ``jobs`` runs at a time;
    the result does not depend on ``jobs``) and write the results JSON to ``path``."""
    cells = [(n_layers, d_model, seed) for n_layers, d_model in SIZES for seed in SEEDS]
    runs, start = [], time.perf_counter()
    for r in map_runs(_cell, cells, jobs):
        runs.append(r)
        if progress:
            print(f"L={r['n_layers']} d={r['d_model']} seed={r['seed']} N={r['non_embedding']} "
                  f"val={r['val_loss'][-1]:.4f} ({r['seconds']:.1f} s)", flush=True)
    record = {"command": "python -m roadmap_lib build scaling-sweep-jargon",
              "protocol": {"context": CONTEXT, "batch": BATCH, "steps": STEPS, "seeds": list(SEEDS),
                           "longer": {f"{L}x{d}": s for (L, d), s in LONGER.items()}, "lr": LR,
                           "warmup": WARMUP, "eval_interval": EVAL_INTERVAL,
                           "eval_batches": EVAL_BATCHES, "tokens_per_step": CONTEXT * BATCH,
                           "score_batches": SCORE_BATCHES, "exact_k": list(EXACT_K),
                           "corpus": "jargon.txt", "threads": 1},
              "runs": runs, "seconds": round(time.perf_counter() - start, 1), "jobs": jobs}
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return record


def load(path: Path) -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} is not built: run `python -m roadmap_lib build "
                                "scaling-sweep-jargon`")
    return json.loads(Path(path).read_text(encoding="utf-8"))


def seed_runs(record: dict, seed: int) -> list[dict]:
    """The runs of one seed, one per size, smallest first."""
    return sorted((r for r in record["runs"] if r["seed"] == seed), key=lambda r: r["non_embedding"])


def main_runs(record: dict) -> list[dict]:
    """One run per size, smallest first: the mean over its seeds of the validation curve (on the
    steps every seed evaluated) and of each score; ``"seeds"`` lists the seeds averaged."""
    by_size: dict[tuple[int, int], list[dict]] = {}
    for r in record["runs"]:
        by_size.setdefault((r["n_layers"], r["d_model"]), []).append(r)
    out = []
    for rs in by_size.values():
        steps = [s for s in rs[0]["val_steps"] if all(s in r["val_steps"] for r in rs)]
        at = [{s: v for s, v in zip(r["val_steps"], r["val_loss"])} for r in rs]
        out.append({**{k: v for k, v in rs[0].items() if k not in ("seed", "train_loss", "seconds")},
                    "seeds": [r["seed"] for r in rs], "val_steps": steps,
                    "val_loss": [statistics.mean(a[s] for a in at) for s in steps],
                    "scores": {k: statistics.mean(r["scores"][k] for r in rs) for k in rs[0]["scores"]}})
    return sorted(out, key=lambda r: r["non_embedding"])


def curves(record: dict, min_step: int = 100) -> list[tuple[int, list[float], list[float]]]:
    """``[(N, tokens, val_loss)]`` per size (mean over seeds), from step ``min_step`` on (after warmup)."""
    tps = record["protocol"]["tokens_per_step"]
    out = []
    for r in main_runs(record):
        keep = [(s * tps, v) for s, v in zip(r["val_steps"], r["val_loss"]) if s >= min_step]
        out.append((r["non_embedding"], [t for t, _ in keep], [v for _, v in keep]))
    return out


def points(record: dict, min_step: int = 100) -> tuple[list[float], list[float], list[float]]:
    """``(N, D, L)`` of every (size, budget) point of the mean curves, for the joint fit."""
    n, d, loss = [], [], []
    for size, tokens, losses in curves(record, min_step):
        n += [size] * len(tokens)
        d += tokens
        loss += losses
    return n, d, loss


__all__ = ["FILE", "SEEDS", "SIZES", "build", "config", "curves", "data", "load", "main_runs", "points",
           "run", "score", "seed_runs"]
