"""Benchmark: speculative decoding and continuous batching on the zoo's character GPTs, one thread.

Speculative decoding: ``gpt-char-jargon`` (target) with ``gpt-char-draft`` (draft) generates
``--new`` characters greedily after each of ``--prompts`` prompts of 16 characters taken at seeded
places of the validation text; for each draft length k the time of the whole set is compared with
the target's own greedy decoding with a KV cache (``roadmap_lib.generation.greedy(use_cache=True)``).
Times are CPU seconds of the benchmark process (``time.process_time``, one thread), so that other
jobs on a shared machine slow the wall clock but not the measurement; each configuration is timed
``--rounds`` times, rounds visiting the configurations in turn (so a
slow spell of a shared machine does not hit one of them only); the file keeps every round.

Continuous batching: for each of 3 workload seeds, ``--requests`` requests with prompts of 4-16 and
outputs of 2-40 characters (uniform) are served by ``roadmap_lib.inference.batching.serve`` with
``--max-batch`` slots, under the static and the continuous policy, ``--rounds`` times each;
throughput (generated tokens per CPU second) and latency (CPU seconds from the start of the run
until a request's last token; all requests arrive at time 0) are recorded per round.

    python benchmarks/bench_inference.py [--rounds 3] [--out ...]

Writes benchmarks/results/inference.json, which chapter 15 reads.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import torch

import roadmap_lib
from roadmap_lib import set_seed
from roadmap_lib.chapters.ch15_inference_optimization.artifacts import load_draft
from roadmap_lib.chapters.ch15_inference_optimization.experiments import prompts, val_ids
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.generation import greedy
from roadmap_lib.inference.batching import mixed_workload, serve
from roadmap_lib.inference.speculative import speculative_generate
from roadmap_lib.measure import cpu_threads
from roadmap_lib.zoo import load_char_gpt

OUT = Path(__file__).resolve().parent / "results" / "inference.json"
KS = (1, 2, 3, 4, 6, 8)
WORKLOAD_SEEDS = (0, 1, 2)


CLOCK = time.process_time  # CPU seconds of this process: other jobs on a shared machine do not count


def _time(fn) -> float:
    start = CLOCK()
    fn()
    return CLOCK() - start


def bench_speculative(target, draft, prompt_list, new: int, rounds: int) -> dict:
    def run_target():
        for p in prompt_list:
            greedy(target, p, new, use_cache=True)

    def run_spec(k):
        def go():
            for p in prompt_list:
                speculative_generate(target, draft, p, new, k=k)
        return go

    def run_draft():
        for p in prompt_list:
            greedy(draft, p, new, use_cache=True)

    configs = {"target": run_target, "draft": run_draft} | {f"k={k}": run_spec(k) for k in KS}
    for fn in configs.values():  # warm-up
        fn()
    times = {name: [] for name in configs}
    for _ in range(rounds):
        for name, fn in configs.items():
            with torch.no_grad():
                times[name].append(_time(fn))
    stats = {}
    for k in KS:
        acc, calls = [], 0
        for p in prompt_list:
            _, st = speculative_generate(target, draft, p, new, k=k)
            acc.append(st.acceptance_rate)
            calls += st.target_calls
        stats[str(k)] = {"acceptance": sum(acc) / len(acc), "target_calls": calls}
    return {"seconds": times, "stats": stats, "prompts": len(prompt_list), "new_tokens": new, "ks": list(KS)}


def bench_batching(model, corpus, n_requests: int, max_batch: int, rounds: int) -> dict:
    out = {}
    for seed in WORKLOAD_SEEDS:
        reqs = mixed_workload(n_requests, model.config.vocab_size, seed=seed, corpus=corpus)
        serve(model, reqs[:max_batch], max_batch=max_batch)  # warm-up
        runs = {"static": [], "continuous": []}
        for _ in range(rounds):
            for policy, rows in runs.items():
                r = serve(model, reqs, max_batch=max_batch, policy=policy, clock=CLOCK)
                rows.append({
                    "seconds": r["seconds"], "tokens": r["tokens"], "steps": r["steps"],
                    "mean_batch": sum(r["batch_sizes"]) / len(r["batch_sizes"]),
                    "latency": [x.finish_s for x in r["results"]],
                    "first_token": [x.first_token_s for x in r["results"]]})
        out[str(seed)] = runs
    return {"workloads": out, "requests": n_requests, "max_batch": max_batch,
                "prompt_range": [4, 16], "new_range": [2, 40]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new", type=int, default=48)
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    set_seed(0)
    target, vocab, _ = load_char_gpt("gpt-char-jargon")
    draft, _, _ = load_draft()
    ids = val_ids(vocab)
    with cpu_threads(1), torch.no_grad():
        spec = bench_speculative(target, draft, prompts(ids, args.prompts, 16, seed=0), args.new,
                                 args.rounds)
        batching = bench_batching(target, ids, args.requests, args.max_batch, args.rounds)
    record = {
        "command": "python benchmarks/bench_inference.py", "speculative": spec, "batching": batching,
        "rounds": args.rounds, "threads": 1, "torch": torch.__version__, "roadmap_lib": roadmap_lib.__version__,
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "clock": "time.process_time (CPU seconds of the benchmark process)",
        "note": "measured on a shared 2-core machine with other jobs running",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
