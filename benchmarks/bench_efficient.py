"""Benchmark: time and memory of each sequence mixer of chapter 12 against the sequence length.

For each mechanism and each length ``L`` (256 to 8192 by default), one forward call of the mixing
operation alone (no projections) on batch 1, float32, one CPU thread, under ``torch.no_grad``:

- ``dense (scores)``: softmax attention with the full ``L x L`` score matrix
  (``roadmap_lib.attention.scaled_dot_product_attention``);
- ``dense (torch SDPA)``: PyTorch's fused ``scaled_dot_product_attention`` (no score matrix kept);
- ``window``: block-sparse sliding window of 256, ``bigbird``: window 128 + 64 global tokens + one
  random block of 64 per query block (``roadmap_lib.efficient.sparse``);
- ``linear``: causal linear attention, chunked form, chunks of 64;
- ``s4d``: an S4D layer, FFT convolution; ``long conv (direct)``: the same convolution computed
  directly (``O(L^2)``), Hyena's alternative;
- ``mamba``: the selective scan, sequential and parallel.

Attention runs 4 heads of 32 (d_model 128); S4D and the scan use 128 channels, state 16. Time is the
CPU time of the calling thread (robust to the other processes of a shared machine), the best over ``--rounds`` rounds (each visiting every mechanism in turn) of the best of at least
``--repeats`` calls after a warm-up (more for fast calls, about 0.2 s of calls per round); peak memory is the largest total of live tensors
during one call (``roadmap_lib.measure.peak_memory``, which traces every operation, so for the
token-by-token scan it stops at ``--max-loop-memory`` tokens). The quadratic mechanisms stop at
``--max-quadratic`` tokens. Decode-time state: the bytes each mechanism must keep to generate the
next token after ``L`` tokens, read from the real state tensors (a KV cache for 1, 2 and 8 key/value
heads of dimension 32, a window's capped cache, linear attention's ``(S, z)``, Mamba's SSM and
convolution states).

    python benchmarks/bench_efficient.py [--lengths 256 512 ...] [--repeats 3] [--out ...]

Writes benchmarks/results/efficient.json, which chapter 12 reads.
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

from roadmap_lib import set_seed
from roadmap_lib.attention import KVCache, scaled_dot_product_attention
from roadmap_lib.efficient.linear import linear_attention_chunked, linear_attention_recurrent
from roadmap_lib.efficient.sparse import SparsePattern, block_sparse_attention
from roadmap_lib.efficient.ssm import S4D, causal_conv_direct, selective_scan
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads, cpu_time_call, peak_memory
from roadmap_lib.scaling import fit_power_law

OUT = Path(__file__).resolve().parent / "results" / "efficient.json"
HEADS, HEAD_DIM, CHANNELS, STATE = 4, 32, 128, 16
QUADRATIC = ("dense (scores)", "long conv (direct)")
#: Python loops over tokens: tracing their memory op by op costs O(L^2), so it stops at --max-loop-memory
LOOPS = ("mamba (sequential scan)",)


def mechanisms(L: int, g: torch.Generator) -> dict:
    q, k, v = (torch.randn(1, HEADS, L, HEAD_DIM, generator=g) for _ in range(3))
    window = SparsePattern("window", window=256, block=64)
    bigbird = SparsePattern("bigbird", window=128, block=64, n_global=64, n_random=1)
    s4d = S4D(CHANNELS, state=STATE)
    x = torch.randn(1, L, CHANNELS, generator=g)
    u = torch.randn(1, CHANNELS, L, generator=g)
    kernel = s4d.kernel(L).detach()
    delta = F.softplus(torch.randn(1, CHANNELS, L, generator=g))
    A = -torch.rand(CHANNELS, STATE, generator=g)
    B, C = (torch.randn(1, STATE, L, generator=g) for _ in range(2))
    return {
        "dense (scores)": lambda: scaled_dot_product_attention(q, k, v, is_causal=True),
        "dense (torch SDPA)": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "window": lambda: block_sparse_attention(q, k, v, window),
        "bigbird": lambda: block_sparse_attention(q, k, v, bigbird),
        "linear": lambda: linear_attention_chunked(q, k, v, chunk=64),
        "s4d": lambda: s4d(x),
        "long conv (direct)": lambda: causal_conv_direct(u, kernel),
        "mamba (sequential scan)": lambda: selective_scan(u, delta, A, B, C, mode="sequential"),
        "mamba (parallel scan)": lambda: selective_scan(u, delta, A, B, C, mode="parallel"),
    }


def decode_state_bytes(L: int) -> dict:
    """Bytes each mechanism keeps to produce token ``L + 1`` (one layer, batch 1, float32)."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for name, kv_heads in (("KV cache, 8 heads (MHA)", 8), ("KV cache, 2 heads (GQA)", 2),
                           ("KV cache, 1 head (MQA)", 1)):
        cache = KVCache()
        cache.update(torch.randn(1, kv_heads, L, HEAD_DIM, generator=g), torch.randn(1, kv_heads, L, HEAD_DIM, generator=g))
        out[name] = cache.k.nbytes + cache.v.nbytes
    window = KVCache()  # a sliding window keeps only its last 256 positions
    keep = min(L, 256)
    window.update(torch.randn(1, 8, keep, HEAD_DIM, generator=g), torch.randn(1, 8, keep, HEAD_DIM, generator=g))
    out["sliding window 256, 8 heads"] = window.k.nbytes + window.v.nbytes
    q = torch.randn(1, 8, 1, HEAD_DIM, generator=g)
    _, (S, z) = linear_attention_recurrent(q, q, q)
    out["linear attention, 8 heads"] = S.nbytes + z.nbytes
    d_inner = 2 * 8 * HEAD_DIM  # a Mamba layer of the same width (d_model 256, expand 2)
    u = torch.randn(1, d_inner, 1, generator=g)
    _, h = selective_scan(u, u.abs(), -torch.ones(d_inner, STATE), torch.randn(1, STATE, 1, generator=g),
                          torch.randn(1, STATE, 1, generator=g), return_last_state=True)
    conv_state = torch.zeros(1, d_inner, 3)  # the convolution's last d_conv - 1 = 3 inputs
    out["Mamba, d_inner 512, state 16"] = h.nbytes + conv_state.nbytes
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192])
    ap.add_argument("--max-quadratic", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per round, at least (more for fast calls)")
    ap.add_argument("--rounds", type=int, default=1, help="passes over all mechanisms (best kept)")
    ap.add_argument("--max-loop-memory", type=int, default=2048,
                    help="trace the peak memory of token-by-token loops up to this length only")
    ap.add_argument("--only", nargs="+", default=None, help="measure only these mechanisms (default: all)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    set_seed(0)
    result = {"command": "python benchmarks/bench_efficient.py", "date": datetime.date.today().isoformat(),
              "machine": {"cpu_count": os.cpu_count(), "threads": 1, "platform": platform.platform(),
                          "torch": torch.__version__, "load_average_at_start": list(os.getloadavg()),
                          "note": "shared machine: compare mechanisms within this run"},
              "shapes": {"heads": HEADS, "head_dim": HEAD_DIM, "channels": CHANNELS, "state": STATE, "batch": 1},
              "timing": "CPU time of the calling thread (time.thread_time): best over `rounds` rounds of the "
                        "best of at least `repeats` calls (up to 30, about 0.2 s per round) after a warm-up, "
                        "torch.no_grad, float32, one thread",
              "repeats": args.repeats, "rounds": args.rounds,
              "lengths": args.lengths, "time_s": {}, "peak_bytes": {}, "decode_state_bytes": {}}
    with cpu_threads(1), torch.no_grad():
        for L in args.lengths:
            fns = {name: fn for name, fn in mechanisms(L, torch.Generator().manual_seed(L)).items()
                   if (name not in QUADRATIC or L <= args.max_quadratic) and (not args.only or name in args.only)}
            best = {}
            for _ in range(args.rounds):  # rounds visit every mechanism in turn: a slow spell hits all
                for name, fn in fns.items():
                    first = best.get(name) or cpu_time_call(fn, repeats=1)
                    repeats = max(args.repeats, min(30, int(0.2 / max(first, 1e-6))))  # ~0.2 s per round
                    best[name] = min(first, cpu_time_call(fn, repeats=repeats))
            for name, fn in fns.items():
                result["time_s"].setdefault(name, {})[str(L)] = best[name]
                mem = None
                if name not in LOOPS or L <= args.max_loop_memory:
                    mem = peak_memory(fn)
                    result["peak_bytes"].setdefault(name, {})[str(L)] = mem
                shown = f"{mem / 2**20:9.2f} MiB" if mem is not None else "(memory not traced)"
                print(f"L={L:>5} {name:<24} {1e3 * best[name]:9.2f} ms {shown}", flush=True)
            result["decode_state_bytes"][str(L)] = decode_state_bytes(L)
    result["slopes"] = {}
    for name, times in result["time_s"].items():
        xs = [int(L) for L in times if int(L) >= 1024]
        xm = [int(L) for L in result["peak_bytes"].get(name, {}) if int(L) >= 1024]
        if len(xs) >= 2 and len(xm) >= 2:
            p_time, _ = fit_power_law(xs, [times[str(L)] for L in xs])
            p_mem, _ = fit_power_law(xm, [result["peak_bytes"][name][str(L)] for L in xm])
            result["slopes"][name] = {"time": p_time, "memory": p_mem, "fitted_on": xs, "memory_fitted_on": xm}
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    save(result, args.out)
    return result


def save(result: dict, out: Path) -> None:
    """Write ``result`` as JSON to ``out`` (atomically: a failed run leaves the old file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} ({len(result['time_s'])} mechanisms, lengths {result['lengths']})")


if __name__ == "__main__":
    main()
