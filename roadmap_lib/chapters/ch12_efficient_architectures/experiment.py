"""Chapter 12's sweep: every mixer on one task, one parameter budget, three seeds.

``run(variant, seed)`` trains one :class:`~.models.TinyLM` for ``STEPS`` steps on
:class:`~.task.RecallLM` (Jargon File text + associative recall, 64-character sequences) and
evaluates it on fixed held-out batches. ``sweep()`` runs every variant with every seed;
``summary(runs)`` gives the mean and spread per variant. The shipped results
(``data/12_efficient_sweep.json``) come from ``python -m roadmap_lib build ch12-sweep``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from roadmap_lib.data import CharLMData
from roadmap_lib.efficient.moe import expert_utilisation
from roadmap_lib.measure import count_parameters
from roadmap_lib.training import TrainConfig, train

from .models import TinyConfig, TinyLM
from .task import RecallLM, evaluate, task_loss

CONTEXT, BATCH, N_PAIRS, GAP = 64, 16, 6, 24
STEPS, LR, WARMUP = 300, 3e-3, 30
SEEDS = (0, 1, 2)
BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "efficient.json"

#: variant -> TinyConfig fields (besides the shared ones in :func:`config`)
VARIANTS: dict[str, dict] = {
    "dense": {"mixer": "dense"},
    "window": {"mixer": "window"},
    "bigbird": {"mixer": "bigbird"},
    "linear": {"mixer": "linear"},
    "s4d": {"mixer": "s4d"},
    "mamba": {"mixer": "mamba"},
    "moe": {"mixer": "dense", "ffn": "moe"},
}


def make_task(vocab=None) -> RecallLM:
    data = CharLMData(context=CONTEXT, batch_size=BATCH, vocab=vocab)
    return RecallLM(data, batch_size=BATCH, n_pairs=N_PAIRS, gap=GAP)


def config(variant: str, vocab_size: int) -> TinyConfig:
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
    # two layers of window 8 see 14 characters back, less than GAP: the window cannot reach the pairs;
    # BigBird adds 12 global tokens, which are where the pairs are, and one random block per query block
    shared = {"vocab_size": vocab_size, "context": CONTEXT, "window": 8, "block": 8,
              "n_global": 2 * N_PAIRS, "n_random": 1}
    return TinyConfig(**shared, **VARIANTS[variant])


def run(variant: str, seed: int, task: RecallLM | None = None, *, steps: int = STEPS,
        progress: bool = False) -> dict:
    """Train one model; return its record (held-out metrics, sizes, seconds, loss curve)."""
    task = task or make_task()
    torch.manual_seed(seed)
    model = TinyLM(config(variant, len(task.data.vocab.itos)))
    cfg = TrainConfig(max_steps=steps, lr=LR, warmup_steps=min(WARMUP, steps), weight_decay=0.0,
                      eval_interval=steps, eval_batches=1, seed=seed, progress=progress)
    result = train(model, task.get_batch, cfg, loss_fn=task_loss)
    record = {"variant": variant, "seed": seed, "steps": steps, **evaluate(model, task),
              "parameters": count_parameters(model), "active_parameters": model.active_parameters(),
              "train_seconds": result.seconds,
              "loss_curve": [round(r["loss"], 4) for r in result.log[9::10]]}
    if model.moe_layers():
        record["expert_utilisation"] = utilisation(model, task)
    return record


@torch.no_grad()
def utilisation(model: TinyLM, task: RecallLM, seed: int = 1234) -> list[list[float]]:
    """Per MoE layer, the fraction of held-out tokens each expert received."""
    model.eval()
    x, _ = task.get_batch("val", torch.Generator().manual_seed(seed))
    model(x)
    return [[round(float(u), 4) for u in expert_utilisation(m.experts_chosen, m.n_experts)]
            for m in model.moe_layers()]


def sweep(variants=tuple(VARIANTS), seeds=SEEDS) -> dict:
    task = make_task()
    runs, start = [], time.perf_counter()
    for variant in tqdm(variants, desc="variants"):
        for seed in seeds:
            runs.append(run(variant, seed, task))
    return {"task": {"context": CONTEXT, "batch": BATCH, "n_pairs": N_PAIRS, "gap": GAP, "steps": STEPS,
                     "lr": LR, "warmup": WARMUP, "corpus": "jargon.txt"},
            "configs": {v: {k: getattr(config(v, len(task.data.vocab.itos)), k) for k in
                            ("mixer", "ffn", "d_model", "n_layers", "n_heads", "d_ff", "window", "block",
                             "n_global", "n_random", "d_state", "n_experts", "top_k")} for v in variants},
            "runs": runs, "seconds": time.perf_counter() - start}


def summary(runs: list[dict]) -> dict[str, dict]:
    """Per variant: mean, standard deviation, min and max over seeds of each metric."""
    out: dict[str, dict] = {}
    for variant in dict.fromkeys(r["variant"] for r in runs):
        rows = [r for r in runs if r["variant"] == variant]
        entry = {"seeds": len(rows), "parameters": rows[0]["parameters"],
                 "active_parameters": rows[0]["active_parameters"]}
        for key in ("text_loss", "recall_acc", "recall_first_acc", "recall_repeat_acc", "recall_loss",
                    "train_seconds"):
            vals = [r[key] for r in rows]
            entry[key] = {"mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                          "min": min(vals), "max": max(vals), "values": vals}
        out[variant] = entry
    return out


def table_markdown(summary: dict[str, dict]) -> str:
    """The quality table: per variant, parameters (total and active), text loss and recall accuracy
    (all queries, first and repeated ones) as mean ± standard deviation over seeds, and seconds."""
    header = ("| variant | parameters (active) | text loss (nats/char) | recall, all | recall, first queries "
              "| recall, repeated queries | train s / run |")
    lines = [header, "|---|---|---|---|---|---|---|"]
    for name, e in summary.items():
        cells = [f"{e[k]['mean']:.3f} ± {e[k]['sd']:.3f}"
                 for k in ("text_loss", "recall_acc", "recall_first_acc", "recall_repeat_acc")]
        lines.append(f"| {name} | {e['parameters']:,} ({e['active_parameters']:,}) | {' | '.join(cells)} "
                     f"| {e['train_seconds']['mean']:.0f} |")
    return "\n".join(lines)


def load_benchmark(path: Path | None = None) -> dict:
    """Time, memory and decode state against L (see ``benchmarks/bench_efficient.py``)."""
    path = BENCHMARK if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python benchmarks/bench_efficient.py`")
    return json.loads(path.read_text(encoding="utf-8"))


def verdict(a: dict, b: dict, key: str) -> dict:
    """Compare two variants' means of ``key``: ``{"gap": mean_a - mean_b, "se": standard error of the
    gap over seeds, "verdict": "A lower" | "B lower" | "no difference"}``, a difference only beyond
    two standard errors."""
    ea, eb = a[key], b[key]
    na, nb = len(ea["values"]), len(eb["values"])
    gap = ea["mean"] - eb["mean"]
    se = (ea["sd"] ** 2 / na + eb["sd"] ** 2 / nb) ** 0.5
    word = "no difference" if abs(gap) <= 2 * se else ("A lower" if gap < 0 else "B lower")
    return {"gap": gap, "se": se, "verdict": word}


__all__ = [
    "SEEDS",
    "STEPS",
    "VARIANTS",
    "config",
    "load_benchmark",
    "make_task",
    "run",
    "summary",
    "sweep",
    "table_markdown",
    "utilisation",
    "verdict",
]
