"""Benchmark: this CPU's roofline, the two numbers chapter 13's roofline plot needs for a CPU.

- **peak compute**: float32 matrix multiply (``torch.mm``, ``--size`` x ``--size``), FLOPs counted
  as 2·n³ per product;
- **memory bandwidth**: a large copy (``dst.copy_(src)`` of ``--copy-mib`` MiB of float32, far
  larger than any CPU cache), bytes counted as read + written = 2 x the buffer.

Both on ONE thread (the book's convention on a shared machine; a laptop using all its cores gets
more of both), each the best over ``--repeats`` calls after a warm-up, timed with the CPU time of
the calling thread (``time.thread_time``), which the other processes of a shared machine do not
inflate. The ridge point, peak / bandwidth in FLOPs per byte, is where a kernel stops being
limited by memory.

    python benchmarks/bench_roofline.py [--size 1024] [--copy-mib 256] [--repeats 10] [--out ...]

Writes benchmarks/results/roofline.json, which chapter 13 reads.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path

import torch

from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads, cpu_time_call

OUT = Path(__file__).resolve().parent / "results" / "roofline.json"


def measure(size: int, copy_mib: int, repeats: int) -> dict:
    with cpu_threads(1), torch.no_grad():
        a, b = torch.randn(size, size), torch.randn(size, size)
        out = torch.empty(size, size)
        mm_s = cpu_time_call(lambda: torch.mm(a, b, out=out), repeats)
        n = copy_mib * 2**20 // 4
        src, dst = torch.randn(n), torch.empty(n)
        copy_s = cpu_time_call(lambda: dst.copy_(src), repeats)
    flops, moved = 2 * size**3, 2 * n * 4
    peak, bandwidth = flops / mm_s, moved / copy_s
    return {"matmul": {"size": size, "dtype": "float32", "flops": flops, "best_cpu_s": mm_s,
                       "flop_per_s": peak},
            "copy": {"bytes_moved": moved, "buffer_mib": copy_mib, "best_cpu_s": copy_s,
                     "bytes_per_s": bandwidth},
            "ridge_flop_per_byte": peak / bandwidth}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--copy-mib", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    result = {"machine": {"processor": platform.processor() or platform.machine(),
                          "platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "threads_used": 1, "torch": torch.__version__,
                          "load_average_at_start": list(os.getloadavg())},
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": "python benchmarks/bench_roofline.py",
              **measure(args.size, args.copy_mib, args.repeats)}
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"matmul {result['matmul']['flop_per_s'] / 1e9:.1f} GFLOP/s, copy "
          f"{result['copy']['bytes_per_s'] / 1e9:.1f} GB/s, ridge {result['ridge_flop_per_byte']:.1f} FLOP/B; "
          f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
