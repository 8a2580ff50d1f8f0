"""Train a character-level GPT on the shipped corpus: the reference recipe, then faster settings.

    python benchmarks/train_lm.py            # writes benchmarks/results/train_lm.json

1. The reference recipe (issue 5): GPT with 4 layers, 4 heads, 128 dimensions, context 64, batch 12,
   2000 steps, AdamW lr 1e-3 with 100 warmup steps and cosine decay to 1e-4, dropout 0. Reports
   tokens/s, wall time and the final validation loss.
2. Candidate configurations of the same library (depth, optimiser settings, schedule), each
   trained for a fixed number of steps and evaluated once, like the recipe. The fastest one whose
   validation loss is at most the recipe's is reported with its ratio to the recipe's wall time.

Everything runs in one process, one after the other, with one thread (``torch.set_num_threads(1)``),
so the ratios compare like with like. The recipe runs again at the end: on a shared machine the
load drifts, and the two recipe times bracket that drift (ratios are to their mean, and both
individual ratios are recorded). Absolute times depend on the machine and on whatever else shares
its CPU; quote the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from roadmap_lib.data import CharLMData
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.training import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results" / "train_lm.json"
EVAL_BATCHES = 40  # validation: 40 fixed batches of 12 x 64 characters

RECIPE = dict(model=dict(n_layers=4, n_heads=4, d_model=128), batch_size=12,
              train=dict(max_steps=2000, lr=1e-3, min_lr_ratio=0.1, warmup_steps=100,
                         weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0))

# Same library, other settings: a shallower model (half the blocks) with a 3-4x higher peak
# learning rate and a shorter warmup; each trains a fixed number of steps, then is evaluated once.
CANDIDATES = {
    "2layers_lr3e-3_1500steps": dict(
        model=dict(n_layers=2, n_heads=4, d_model=128), batch_size=12,
        train=dict(max_steps=1500, lr=3e-3, min_lr_ratio=0.1, warmup_steps=50, weight_decay=0.1,
                   betas=(0.9, 0.99), grad_clip=1.0)),
    "2layers_lr4e-3_1300steps": dict(
        model=dict(n_layers=2, n_heads=4, d_model=128), batch_size=12,
        train=dict(max_steps=1300, lr=4e-3, min_lr_ratio=0.1, warmup_steps=50, weight_decay=0.1,
                   betas=(0.9, 0.99), grad_clip=1.0)),
}


def run(name: str, spec: dict, data: CharLMData, *, target: float | None, vocab: int) -> dict:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab, context_length=64, dropout=0.0, **spec["model"]))
    data.batch_size = spec["batch_size"]
    steps = spec["train"]["max_steps"]
    cfg = TrainConfig(**spec["train"], eval_interval=steps, eval_batches=EVAL_BATCHES, seed=0,
                      progress=True)
    batches = lambda split, g: data.get_batch(split, g, batch_size=12 if split == "val" else None)  # noqa: E731
    start = time.perf_counter()
    result = train(model, batches, cfg)  # evaluates once, after the last step
    wall = time.perf_counter() - start
    final = result.log[-1]["val_loss"]
    train_seconds = wall - result.eval_seconds
    row = dict(name=name, spec=spec, steps=result.step, parameters=model.num_parameters(),
               wall_seconds=round(wall, 2), train_seconds=round(train_seconds, 2),
               tokens_per_second=round(result.step * spec["batch_size"] * 64 / train_seconds, 1),
               final_val_loss=round(final, 4),
               reached_target=None if target is None else final <= target)
    print(json.dumps({k: v for k, v in row.items() if k != "spec"}), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only", nargs="*", help="candidate names to try (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = CharLMData(context=64, batch_size=12)
    vocab = len(data.vocab)

    recipe = run("recipe", RECIPE, data, target=None, vocab=vocab)
    target = recipe["final_val_loss"]
    tried = []
    for name, spec in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        tried.append(run(name, spec, data, target=target, vocab=vocab))
    recipe_again = run("recipe (repeat)", RECIPE, data, target=None, vocab=vocab)
    if recipe_again["final_val_loss"] != target:
        raise RuntimeError(f"the recipe is not deterministic: {target} then {recipe_again['final_val_loss']}")
    recipe_wall = (recipe["wall_seconds"] + recipe_again["wall_seconds"]) / 2
    for row in tried:
        row["wall_ratio_to_recipe"] = round(row["wall_seconds"] / recipe_wall, 3)
        row["wall_ratio_to_each_recipe_run"] = [
            round(row["wall_seconds"] / r["wall_seconds"], 3) for r in (recipe, recipe_again)]
    reached = [r for r in tried if r["reached_target"]]
    best = min(reached, key=lambda r: r["wall_seconds"]) if reached else None
    out = dict(
        description="char-level GPT on data/jargon.txt: reference recipe vs fastest configuration "
                    "reaching its validation loss; one process, one thread, run sequentially",
        note="absolute times are noisy (the CPU is shared); compare the ratio",
        machine=dict(platform=platform.platform(), processor=platform.processor(),
                     cpus=os.cpu_count(), torch=torch.__version__, threads=torch.get_num_threads()),
        eval=dict(batches=EVAL_BATCHES, batch_size=12, context=64, split="last 10% of jargon.txt"),
        recipe=recipe, recipe_repeat=recipe_again, recipe_mean_wall_seconds=round(recipe_wall, 2),
        candidates=tried,
        fastest=None if best is None else best["name"],
        fastest_wall_ratio=None if best is None else best["wall_ratio_to_recipe"],
        target_ratio=0.6,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: fastest {out['fastest']} at {out['fastest_wall_ratio']}x the recipe's wall time")


if __name__ == "__main__":
    main()
