"""Benchmark: the speed side of chapter 10's training setup, and bf16-vs-fp32 loss curves.

On one CPU thread, timing with CPU time of the calling thread (``time.thread_time``: the other
processes of a shared machine do not count), best of ``--repeats`` calls after a warm-up:

- **packing vs padding**: one forward + backward of the zoo character GPT (chapter 07) on 256
  Jargon File sentences of at most 64 characters, padded one per row to 64 or packed first-fit
  into rows of 64 with the document-causal mask (``roadmap_lib.packing``); real tokens per second;
- **bf16 autocast vs fp32**: one training step (forward, backward, AdamW) of the zoo-shaped GPT on
  a batch of 16 x 64 characters, with and without ``torch.autocast("cpu", dtype=torch.bfloat16)``;
- **activation checkpointing**: the same step with every block checkpointed;
- **bf16 loss curves**: a fresh small GPT (2 layers, 64 dims) trained 100 steps in fp32 and under
  bf16 autocast, seeds 0, 1, 2 (same data order per seed).

    python benchmarks/bench_training_setup.py [--repeats 5] [--out ...]

Writes benchmarks/results/training_setup.json, which chapter 10 reads.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path

import torch
import torch.nn.functional as F

from roadmap_lib.chapters.ch10_pretraining_finetuning import setup as S
from roadmap_lib.data import CharLMData
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads, cpu_time_call
from roadmap_lib.models.gpt import GPT
from roadmap_lib.optim import AdamW
from roadmap_lib.packing import pack_documents, packed_lm_loss, pad_documents
from roadmap_lib.zoo import load_char_gpt

OUT = Path(__file__).resolve().parent / "results" / "training_setup.json"


def packing(model, vocab, repeats: int) -> dict:
    docs = S.encode_documents(vocab, S.jargon_documents(256))
    out = {}
    for name, batch in (("padded", pad_documents(docs, seq_len=64)), ("packed", pack_documents(docs, 64))):
        def step(batch=batch):
            model.zero_grad(set_to_none=True)
            packed_lm_loss(model, batch).backward()
        sec = cpu_time_call(step, repeats)
        real = int((batch.doc_ids >= 0).sum())
        out[name] = {"rows": batch.ids.shape[0], "pad_fraction": batch.pad_fraction, "real_tokens": real,
                     "seconds": sec, "real_tokens_per_s": real / sec}
    return out


def step_times(model: GPT, vocab, repeats: int) -> dict:
    data = CharLMData(context=64, batch_size=16, vocab=vocab)
    x, y = data.get_batch("train", torch.Generator().manual_seed(0))
    opt = AdamW(model.parameters(), lr=1e-4)
    out = {}
    for name, bf16, ckpt in (("fp32", False, False), ("bf16 autocast", True, False), ("fp32 + checkpointing", False, True)):
        def step(bf16=bf16, ckpt=ckpt):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(S.gpt_logits(model, x, ckpt).flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        out[name] = cpu_time_call(step, repeats)
    return out


def curves(seeds=(0, 1, 2), steps: int = 100) -> dict:
    return {p: {str(s): S.train_curve(p, steps=steps, seed=s) for s in seeds} for p in ("fp32", "bf16")}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    with cpu_threads(1):
        model, vocab, _ = load_char_gpt()
        model.train()
        result = {"command": "python benchmarks/bench_training_setup.py", "date": datetime.date.today().isoformat(),
                  "machine": {"cpu_count": os.cpu_count(), "threads": 1, "platform": platform.platform(),
                              "processor": platform.processor(), "torch": torch.__version__},
                  "timing": f"CPU time of the calling thread (time.thread_time), best of {args.repeats} calls "
                            "after a warm-up, one thread",
                  "packing": packing(model, vocab, args.repeats),
                  "step_seconds": step_times(model, vocab, args.repeats),
                  "curves": curves()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    r = main()
    print(json.dumps({k: r[k] for k in ("packing", "step_seconds")}, indent=1))
