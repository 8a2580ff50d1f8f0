"""Train a character-level GPT on the shipped corpus: transformers' GPT-2, ours, and faster settings.

    python benchmarks/train_lm.py            # writes benchmarks/results/train_lm.json

Everything runs in one process, one after the other, with one thread, on the same data, optimiser
and schedule (the recipe: 4 layers, 4 heads, 128 dimensions, context 64, batch 12, 2000 steps,
our AdamW at lr 1e-3 with 100 warmup steps and cosine decay to 1e-4, weight decay 0.1 on matrices,
gradients clipped at 1, dropout 0):

1. the reference: transformers' ``GPT2LMHeadModel`` with its ``sdpa`` attention, started from the
   same weights as ours (our seed-0 model converted by ``gpt_to_hf``);
2. our GPT at the recipe with each attention backend that runs on this device (``math``, the
   written-out arithmetic; ``sdpa``, PyTorch's fused kernel; ``flash``, the Triton kernel, only on
   a CUDA GPU: on a CPU Triton runs in its interpreter, which is for testing, not for speed), and
   the fast path: ``sdpa`` with ``fused_ops=True`` (LayerNorm and GELU as one PyTorch kernel each
   instead of written out; the same function, tests/test_fused_ops.py);
3. candidate configurations of ours on the fast path (shallower, higher learning rate, fewer
   steps), each evaluated once; the fastest whose validation loss is at most the reference's is
   reported with its time as a fraction of the reference's.

Each run records wall seconds and CPU seconds of the process (``time.process_time``). With one
thread, CPU seconds count the work this process did and are much less sensitive to other processes
sharing the CPU than wall seconds are; on a quiet machine the two agree. Ratios are given in both.
The reference runs again at the end, and ratios are to the mean of its two runs (both individual
ratios are recorded), so drift in the machine's load during the benchmark shows up as a gap
between the two.

``--profile`` adds the top operators by self CPU time over 30 training steps of the reference and
of our fast backend (``torch.profiler``), the profile that says where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

from roadmap_lib.data import CharLMData
from roadmap_lib.measure import count_parameters
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.models.hf import gpt_to_hf
from roadmap_lib.objectives import lm_loss
from roadmap_lib.optim import AdamW, param_groups_with_decay
from roadmap_lib.training import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results" / "train_lm.json"
EVAL_BATCHES = 40  # validation: 40 fixed batches of 12 x 64 characters
CONTEXT = 64

RECIPE = dict(model=dict(n_layers=4, n_heads=4, d_model=128), batch_size=12,
              train=dict(max_steps=2000, lr=1e-3, min_lr_ratio=0.1, warmup_steps=100,
                         weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0))

# Same library, fast backend, other settings: a shallower model (half the blocks) with a 4-5x
# higher peak learning rate, a shorter warmup and fewer steps; each is evaluated once, at the end.
CANDIDATES = {
    f"2layers_lr{lr:g}_{steps}steps": dict(
        model=dict(n_layers=2, n_heads=4, d_model=128), batch_size=12,
        train=dict(max_steps=steps, lr=lr, min_lr_ratio=0.1, warmup_steps=50, weight_decay=0.1,
                   betas=(0.9, 0.99), grad_clip=1.0))
    for lr, steps in [(4e-3, 1300), (4e-3, 1100), (5e-3, 1000)]
}


class HFLogits(nn.Module):
    """transformers' causal LM seen as ``ids -> logits``, the interface our training loop uses."""

    def __init__(self, hf: nn.Module):
        super().__init__()
        self.hf = hf

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=ids).logits


def build(kind: str, spec: dict, vocab: int) -> nn.Module:
    """Seed-0 model of ``spec``: ``"transformers"``, or ours with attention backend ``kind``
    (``"math"``, ``"sdpa"``, ``"flash"``), ``"+fused"`` adding ``fused_ops=True``."""
    torch.manual_seed(0)
    backend = "sdpa" if kind == "transformers" else kind.removesuffix("+fused")
    ours = GPT(GPTConfig(vocab_size=vocab, context_length=CONTEXT, dropout=0.0,
                         attention_backend=backend, fused_ops=kind.endswith("+fused"), **spec["model"]))
    if kind != "transformers":
        return ours
    hf = gpt_to_hf(ours)
    hf.config._attn_implementation = "sdpa"  # what from_pretrained picks on a recent PyTorch
    return HFLogits(hf)


def run(name: str, kind: str, spec: dict, data: CharLMData, *, target: float | None, vocab: int) -> dict:
    model = build(kind, spec, vocab)
    data.batch_size = spec["batch_size"]
    steps = spec["train"]["max_steps"]
    cfg = TrainConfig(**spec["train"], eval_interval=steps, eval_batches=EVAL_BATCHES, seed=0,
                      progress=False)
    batches = lambda split, g: data.get_batch(split, g, batch_size=12 if split == "val" else None)  # noqa: E731
    load_before = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    result = train(model.train(), batches, cfg)  # evaluates once, after the last step
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    final = result.log[-1]["val_loss"]
    tokens = result.step * spec["batch_size"] * CONTEXT
    row = dict(name=name, model=kind, spec=spec, steps=result.step, parameters=count_parameters(model),
               wall_seconds=round(wall, 2), cpu_seconds=round(cpu, 2),
               tokens_per_second=round(tokens / (wall - result.eval_seconds), 1),
               tokens_per_cpu_second=round(tokens / cpu, 1),
               final_val_loss=round(final, 4),
               reached_target=None if target is None else final <= target,
               load_average=[round(load_before, 2), round(os.getloadavg()[0], 2)])
    print(json.dumps({k: v for k, v in row.items() if k != "spec"}), flush=True)
    return row


def profile(kind: str, data: CharLMData, vocab: int, steps: int = 30, top: int = 10) -> list[dict]:
    """The ``top`` operators by self CPU time over ``steps`` training steps of the recipe's model."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    model = build(kind, RECIPE, vocab).train()
    opt = AdamW(param_groups_with_decay(model, 0.1), lr=1e-3, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(0)
    batches = [data.get_batch("train", g, batch_size=12) for _ in range(steps + 5)]
    for x, y in batches[:5]:  # warm up outside the profile
        lm_loss(model, x, y).backward()
        opt.step()
        opt.zero_grad()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for x, y in batches[5:]:
            lm_loss(model, x, y).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [dict(op=e.key, calls=e.count, self_cpu_ms=round(e.self_cpu_time_total / 1e3, 1),
                 share=round(e.self_cpu_time_total / total, 3)) for e in events[:top]]


def ratio(a: float, b: float) -> float:
    return round(a / b, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only", nargs="*", help="candidate names to try (default: all)")
    parser.add_argument("--profile", action="store_true", help="add a torch.profiler summary")
    args = parser.parse_args()
    unknown = set(args.only or ()) - set(CANDIDATES)
    if unknown:
        parser.error(f"--only: unknown candidates {sorted(unknown)}; expected some of {sorted(CANDIDATES)}")
    torch.set_num_threads(1)
    data = CharLMData(context=CONTEXT, batch_size=12)
    vocab = len(data.vocab)
    backends = ["math", "sdpa", "sdpa+fused"] + (["flash+fused"] if torch.cuda.is_available() else [])
    fast = backends[-1]

    reference = run("transformers GPT2LMHeadModel (sdpa)", "transformers", RECIPE, data, target=None, vocab=vocab)
    target = reference["final_val_loss"]
    ours = {b: run(f"ours, {b}", b, RECIPE, data, target=target, vocab=vocab) for b in backends}
    tried = [run(f"ours, {fast}, {name}", fast, spec, data, target=target, vocab=vocab)
             for name, spec in CANDIDATES.items() if not args.only or name in args.only]
    reference_again = run("transformers GPT2LMHeadModel (sdpa), repeat", "transformers", RECIPE, data,
                          target=None, vocab=vocab)
    if reference_again["final_val_loss"] != target:
        raise RuntimeError(f"the reference is not deterministic: {target} then {reference_again['final_val_loss']}")
    refs = (reference, reference_again)
    ref_wall = sum(r["wall_seconds"] for r in refs) / 2
    ref_cpu = sum(r["cpu_seconds"] for r in refs) / 2
    for row in [*ours.values(), *tried]:
        row["cpu_ratio_to_reference"] = ratio(row["cpu_seconds"], ref_cpu)
        row["wall_ratio_to_reference"] = ratio(row["wall_seconds"], ref_wall)
        row["wall_ratio_to_each_reference_run"] = [ratio(row["wall_seconds"], r["wall_seconds"]) for r in refs]
        row["cpu_ratio_to_each_reference_run"] = [ratio(row["cpu_seconds"], r["cpu_seconds"]) for r in refs]
    reached = [r for r in tried if r["reached_target"]]
    best = min(reached, key=lambda r: r["cpu_seconds"]) if reached else None
    out = dict(
        description="char-level GPT on data/jargon.txt: transformers' GPT2LMHeadModel against ours with "
                    "each attention backend at the same recipe, and the fastest configuration of ours "
                    "reaching the reference's validation loss; one process, one thread, run sequentially",
        note="absolute times depend on the machine and its load; compare ratios (CPU-second ratios "
             "are the robust ones on a shared machine)",
        machine=dict(platform=platform.platform(), processor=platform.processor(),
                     cpus=os.cpu_count(), torch=torch.__version__, threads=torch.get_num_threads()),
        eval=dict(batches=EVAL_BATCHES, batch_size=12, context=CONTEXT, split="last 10% of jargon.txt"),
        reference=reference, reference_repeat=reference_again,
        reference_mean_wall_seconds=round(ref_wall, 2), reference_mean_cpu_seconds=round(ref_cpu, 2),
        ours=ours,
        flash="measured only on a CUDA GPU" if "flash+fused" not in ours else "measured",
        fast_path=fast,
        tokens_per_cpu_second_ratio_to_reference={
            b: ratio(r["tokens_per_cpu_second"], sum(x["tokens_per_cpu_second"] for x in refs) / 2)
            for b, r in ours.items()},
        candidates=tried,
        fastest=None if best is None else best["name"],
        fastest_cpu_ratio=None if best is None else best["cpu_ratio_to_reference"],
        fastest_wall_ratio=None if best is None else best["wall_ratio_to_reference"],
        targets=dict(fast_backend_tokens_per_second_ratio=1.0, fastest_time_ratio=0.3),
    )
    if args.profile:
        out["profile_30_steps"] = {k: profile(k, data, vocab) for k in ("transformers", "math", "sdpa", fast)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: fastest {out['fastest']} at {out['fastest_cpu_ratio']}x the reference's "
          f"CPU time ({out['fastest_wall_ratio']}x its wall time)")


if __name__ == "__main__":
    main()
