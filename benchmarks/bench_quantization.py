"""Benchmark: CPU forward time of every variant in chapter 14's quantisation table.

Builds each row of ``roadmap_lib.chapters.ch14_quantization.methods.METHODS`` from the shipped
character-level GPT (``gpt-char-jargon``; GPTQ and AWQ calibrated on calibration seed 0: their
forward does not depend on the seed), plus one extra: int8 RTN through PyTorch's weight-only
kernel ``torch._weight_int8pack_mm``. It then times a forward pass (logits of every position) on
one CPU thread for two input shapes, a batch of 12 windows of 64 characters and one window of 64,
as the best of ``--repeats`` calls after a warm-up, repeated over ``--rounds`` rounds that visit
the methods in turn (so that a slow spell of a shared machine does not hit one method only), and
keeps the best. It also records the time each recipe took to quantise the model, once.

    python benchmarks/bench_quantization.py [--repeats 20] [--rounds 3] [--out ...]

Writes benchmarks/results/quantization.json, which chapter 14 reads for its speed column.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import torch

import roadmap_lib
from roadmap_lib import set_seed
from roadmap_lib.chapters.ch14_quantization.experiments import calibration_sets
from roadmap_lib.chapters.ch14_quantization.methods import METHODS, build
from roadmap_lib.data import CharLMData
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads, time_call
from roadmap_lib.quantization import quantize_model
from roadmap_lib.zoo import load_char_gpt

OUT = Path(__file__).resolve().parent / "results" / "quantization.json"
SHAPES = {"12x64": (12, 64), "1x64": (1, 64)}
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def repeats_of(key: str, repeats: int) -> int:
    """Timed calls per round: fewer for the one kernel that takes most of a second per call."""
    return max(3, repeats // 5) if key == "int8-rtn-int8pack" else repeats


def machine_info(threads: int) -> dict:
    cpu, flags = "unknown", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                have = set(line.split(":", 1)[1].split())
                flags = [f for f in FLAGS if f in have]
    except OSError:
        pass
    return {
        "cpu": cpu if cpu != "unknown" else (platform.processor() or "unknown"),
        "cpu_flags": flags, "cpu_count": os.cpu_count(), "threads": threads,
        "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "quantized_engine": torch.backends.quantized.engine,
        "roadmap_lib": roadmap_lib.__version__,
        "load_average_at_start": list(os.getloadavg()),
        "note": "shared machine: compare methods within this run, not with other machines",
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20, help="timed calls per round (best kept)")
    ap.add_argument("--rounds", type=int, default=3, help="passes over all the methods")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    set_seed(0)
    result = {"command": "python benchmarks/bench_quantization.py",
              "date": datetime.date.today().isoformat(), "machine": machine_info(args.threads),
              "model": "gpt-char-jargon", "repeats": args.repeats, "rounds": args.rounds,
              "shapes": {k: list(v) for k, v in SHAPES.items()},
              "timing": "best of `repeats` forward calls after a warm-up, best over `rounds`, "
                        "torch.no_grad, one thread", "methods": {}}
    with cpu_threads(args.threads):
        model, vocab, _ = load_char_gpt()
        data = CharLMData(context=64, batch_size=12, vocab=vocab)
        calib = calibration_sets(data, seeds=(0,))[0]
        inputs = {k: data.get_batch("val", torch.Generator().manual_seed(7), batch_size=b)[0][:, :t]
                  for k, (b, t) in SHAPES.items()}
        variants = {}
        for m in METHODS:
            start = time.perf_counter()
            variants[m.key] = build(model, m, calib if m.calibrated else None)
            result["methods"][m.key] = {"label": m.label, "quantize_s": time.perf_counter() - start,
                                        "forward_ms": {}}
            print(f"built {m.label} in {result['methods'][m.key]['quantize_s']:.2f} s")
        start = time.perf_counter()
        variants["int8-rtn-int8pack"] = quantize_model(build(model, "fp32"), "rtn", bits=8,
                                                       int8_kernel=True).eval()
        result["methods"]["int8-rtn-int8pack"] = {
            "label": "int8 RTN via torch._weight_int8pack_mm", "quantize_s": time.perf_counter() - start,
            "forward_ms": {}, "note": "not a row of the table: same weights as int8-rtn, another kernel; "
                                      "slow, so timed with repeats // 5 calls per round (at least 3)"}
        best = {(k, s): float("inf") for k in variants for s in SHAPES}
        for r in range(args.rounds):
            for key, q in variants.items():
                for shape, x in inputs.items():
                    best[key, shape] = min(best[key, shape], time_call(lambda q=q, x=x: q(x),
                                                                       repeats=repeats_of(key, args.repeats)))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{k} {1e3 * best[k, '12x64']:.1f} ms" for k in variants))
        for (key, shape), t in best.items():
            result["methods"][key]["forward_ms"][shape] = 1e3 * t
            result["methods"][key]["repeats"] = repeats_of(key, args.repeats)
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
