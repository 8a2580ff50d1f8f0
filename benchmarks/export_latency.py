"""Benchmark: one decoding step of gpt-char-jargon in eager PyTorch, ONNX Runtime, torch.export
and torch.compile, one thread.

torch.export and torch.compile capture the step with static shapes (batch 1, one new token, a
cache of ``--past``); the ONNX graph has dynamic batch, new and past lengths.

The exported function is :class:`roadmap_lib.export.CachedGPT` (ids and the KV cache in, logits
and the grown cache out). For each runtime: the one-off cost (export / compile seconds, wall
clock) and the time of a *decode step* (batch 1, one new token after a cache of ``--past``
tokens) and of a *prefill* (batch 1, ``--past`` tokens, empty cache): the median of ``--repeats``
calls after ``--warmup`` calls, in CPU seconds of this process (``time.process_time``: other jobs
on a shared machine slow the wall clock, not this). Also the largest logit difference from eager
PyTorch on the same inputs, and whether 32 greedy tokens with ONNX Runtime equal PyTorch's.

    python benchmarks/export_latency.py [--out benchmarks/results/26_export_latency.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from roadmap_lib.export import CachedGPT, export_onnx, onnx_forward, onnx_greedy, onnx_session
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.generation import greedy
from roadmap_lib.zoo import load_char_gpt

OUT = Path(__file__).resolve().parent / "results" / "26_export_latency.json"


def cpu_median(fn, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--past", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--skip-compile", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, vocab, _ = load_char_gpt("gpt-char-jargon")
    wrapper = CachedGPT(model)
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, model.config.vocab_size, (1, args.past), generator=g)
    token = torch.randint(0, model.config.vocab_size, (1, 1), generator=g)
    with torch.no_grad():
        _, past = wrapper(prompt, wrapper.empty_past(1))
        want_step = wrapper(token, past)[0]
        want_prefill = wrapper(prompt, wrapper.empty_past(1))[0]
    record: dict = {"runtimes": {}}

    def eager_step():
        with torch.no_grad():
            wrapper(token, past)

    def eager_prefill():
        with torch.no_grad():
            wrapper(prompt, wrapper.empty_past(1))

    record["runtimes"]["eager PyTorch"] = {
        "setup_s": 0.0, "step_s": cpu_median(eager_step, args.repeats, args.warmup),
        "prefill_s": cpu_median(eager_prefill, args.repeats, args.warmup), "max_abs_diff": 0.0}

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = export_onnx(model, Path(tmp) / "gpt.onnx")
        export_s = time.perf_counter() - start
        size = path.stat().st_size + sum(p.stat().st_size for p in Path(tmp).glob("*.data"))
        session = onnx_session(path)
        got_step = onnx_forward(session, token, past)[0]
        got_prefill = onnx_forward(session, prompt, wrapper.empty_past(1))[0]
        record["runtimes"]["ONNX Runtime"] = {
            "setup_s": export_s, "file_bytes": size,
            "step_s": cpu_median(lambda: onnx_forward(session, token, past), args.repeats, args.warmup),
            "prefill_s": cpu_median(lambda: onnx_forward(session, prompt, wrapper.empty_past(1)),
                                    args.repeats, args.warmup),
            "max_abs_diff": max(float((got_step - want_step).abs().max()),
                                float((got_prefill - want_prefill).abs().max()))}
        short = prompt[:, :16]
        record["onnx_greedy_32_equal"] = bool(torch.equal(
            onnx_greedy(session, short, 32, wrapper.empty_past(1)),
            greedy(model, short, 32, use_cache=True)))

    start = time.perf_counter()
    # static shapes: the graph of exactly the measured step (batch 1, one token, a cache of --past)
    program = torch.export.export(wrapper, (token, past))
    exported = program.module()
    export_s = time.perf_counter() - start
    with torch.no_grad():
        diff = float((exported(token, past)[0] - want_step).abs().max())

    def export_step():
        with torch.no_grad():
            exported(token, past)

    record["runtimes"]["torch.export"] = {
        "setup_s": export_s, "step_s": cpu_median(export_step, args.repeats, args.warmup),
        "prefill_s": None, "max_abs_diff": diff}

    if not args.skip_compile:
        compiled = torch.compile(wrapper, dynamic=False)
        try:
            start = time.perf_counter()
            with torch.no_grad():
                got = compiled(token, past)[0]
            compile_s = time.perf_counter() - start

            def compiled_step():
                with torch.no_grad():
                    compiled(token, past)

            record["runtimes"]["torch.compile"] = {
                "setup_s": compile_s, "step_s": cpu_median(compiled_step, args.repeats, args.warmup),
                "prefill_s": None, "max_abs_diff": float((got - want_step).abs().max())}
        except Exception as err:  # no C++ compiler, for instance: record why
            record["runtimes"]["torch.compile"] = {"error": f"{type(err).__name__}: {err}"[:300]}

    record.update({
        "command": "python benchmarks/export_latency.py", "model": "gpt-char-jargon",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "loadavg_1min": os.getloadavg()[0]},
        "torch": torch.__version__, "threads": 1,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "clock": "time.process_time (CPU seconds of this process), median of repeats",
    })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    for name, r in record["runtimes"].items():
        print(name, {k: v for k, v in r.items()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
