"""Chapter 04's activation comparison at equal parameter count, with three seeds.

The same 3-block character model (no biases, so that the parameter counts match exactly) is
trained with each feed-forward activation for 200 steps; gated FFNs get 2/3 of the hidden width
(:func:`~roadmap_lib.chapters.ch04_core_components.experiments.ffn_width_for_params`). Fifteen runs
(five activations, three seeds) take longer than the chapter's budget, so they are a shipped
results file, ``data/04_activations.json``, built by ``python -m roadmap_lib build 04-activations``;
the chapter re-trains one run live and compares.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from roadmap_lib import DATA_DIR, set_seed
from roadmap_lib.chapters.ch04_core_components.experiments import BlockStackLM, ffn_width_for_params, train_lm
from roadmap_lib.data import CharLMData
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.layers import BlockConfig
from roadmap_lib.measure import count_parameters, cpu_threads
from roadmap_lib.training import evaluate

RESULTS_FILE = "04_activations.json"
ACTIVATIONS = ("relu", "gelu", "silu", "swiglu", "geglu")
GATED = ("swiglu", "geglu")
SEEDS = (0, 1, 2)
RECIPE = {"d_model": 32, "n_heads": 4, "d_ff": 96, "n_layers": 3, "context": 32, "batch_size": 16,
          "steps": 200, "lr": 3e-3, "eval_batches": 20}


def run_one(activation: str, seed: int, data: CharLMData | None = None, *, fast: bool = False) -> dict:
    """Train one model; return its parameter count, hidden width and validation loss (nats).

    ``fast=True`` builds the blocks with ``attention_backend="sdpa"`` and ``fused_ops=True``: the
    same function computed by PyTorch's fused kernels (equal within float rounding), about twice
    as fast on a CPU. The shipped results were trained on the written-out ("math") path.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
    r = RECIPE
    data = data or CharLMData(context=r["context"], batch_size=r["batch_size"])
    set_seed(seed)
    cfg = BlockConfig(d_model=r["d_model"], n_heads=r["n_heads"],
                      d_ff=ffn_width_for_params(r["d_model"], r["d_ff"], activation in GATED),
                      activation=activation, bias=False, causal=True,
                      **({"attention_backend": "sdpa", "fused_ops": True} if fast else {}))
    model = BlockStackLM(len(data.vocab), data.context, cfg, n_layers=r["n_layers"])
    train_lm(model, data.get_batch, steps=r["steps"], lr=r["lr"], seed=seed, desc=f"{activation} seed {seed}")
    with cpu_threads(1):
        val = evaluate(model, data.get_batch, batches=r["eval_batches"])
    return {"activation": activation, "seed": seed, "params": count_parameters(model), "d_ff": cfg.d_ff,
            "val_loss": val}


def run_all() -> dict:
    data = CharLMData(context=RECIPE["context"], batch_size=RECIPE["batch_size"])
    start = time.perf_counter()
    runs = [run_one(act, seed, data) for seed in SEEDS for act in ACTIVATIONS]
    return {"recipe": RECIPE, "runs": runs, "seconds": round(time.perf_counter() - start, 1),
            "command": "python -m roadmap_lib build 04-activations", "torch": torch.__version__}


def load_results(path: Path | None = None) -> dict:
    path = path or DATA_DIR / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: build it with `python -m roadmap_lib build 04-activations`")
    return json.loads(path.read_text(encoding="utf-8"))


def losses_by_activation(info: dict) -> dict[str, list[float]]:
    """``{activation: [validation loss of seed 0, 1, 2]}``."""
    out: dict[str, list[float]] = {a: [] for a in ACTIVATIONS}
    for run in sorted(info["runs"], key=lambda r: r["seed"]):
        out[run["activation"]].append(run["val_loss"])
    return out


def write(root: Path) -> None:
    atomic_write_text(root / RESULTS_FILE, json.dumps(run_all(), indent=1) + "\n")
