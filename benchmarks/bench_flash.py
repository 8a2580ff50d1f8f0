"""Benchmark the Triton FlashAttention-2 kernels against PyTorch's scaled_dot_product_attention.

Needs a CUDA GPU; on a machine without one it says so and writes nothing. Never part of the tests.

    python benchmarks/bench_flash.py            # the full sweep (below)
    python benchmarks/bench_flash.py --quick    # bfloat16, D=128, N in {1k, 4k}: a few minutes

Measures forward, backward and forward+backward in TFLOP/s for our kernels (``triton``) and SDPA's
flash, cuDNN and math backends (``sdpa_flash``, ``sdpa_cudnn``, ``sdpa_math``), in bfloat16 and
float16, B=4, H=32 query heads with 32 (MHA) or 8 (GQA) key/value heads, D in {64, 128},
N = 1k, 2k, 4k, 8k, 16k, causal and not. FLOPs: forward 4·B·H·N²·D, halved when causal; backward
2.5× forward (FlashAttention's convention). Times are medians of ``triton.testing.do_bench``.

Writes ``benchmarks/results/flash_<device>.json`` (device name, versions, one row per measurement,
and each configuration's max error against SDPA) and ``flash_<device>.png``, each atomically.
Chapter 13 reads the JSON with ``roadmap_lib.chapters.ch13_flashattention_kernels.plots``. A backend that cannot run a
configuration (unsupported, out of memory) gets a row with ``tflops: null`` and its error message.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import re
import sys
import tempfile
from pathlib import Path

IMPLS = ("triton", "sdpa_flash", "sdpa_cudnn", "sdpa_math")
PASSES = ("fwd", "bwd", "fwd+bwd")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def attention_tflop(batch, heads, n, d, causal, pass_):
    fwd = 4.0 * batch * heads * n * n * d / (2 if causal else 1)
    return {"fwd": fwd, "bwd": 2.5 * fwd, "fwd+bwd": 3.5 * fwd}[pass_] / 1e12


def sweep(args):
    """Every configuration to measure, as dicts."""
    if args.quick:
        dtypes, ds, ns, layouts, causals = ["bfloat16"], [128], [1024, 4096], [(32, 32), (32, 8)], [False, True]
    else:
        dtypes, ds, layouts, causals = ["bfloat16", "float16"], [64, 128], [(32, 32), (32, 8)], [False, True]
        ns = [1024, 2048, 4096, 8192, 16384]
    ns = [n for n in ns if n <= args.max_n]
    for dtype, (heads, kv_heads), d, causal, n in itertools.product(dtypes, layouts, ds, causals, ns):
        yield {"dtype": dtype, "batch": args.batch, "heads": heads, "kv_heads": kv_heads, "d": d,
               "causal": causal, "n": n}


def make_impl(name, torch, F, flash_attention):
    """A function (q, k, v, causal) -> o for each implementation."""
    if name == "triton":
        return lambda q, k, v, causal: flash_attention(q, k, v, causal=causal)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"sdpa_flash": SDPBackend.FLASH_ATTENTION, "sdpa_cudnn": SDPBackend.CUDNN_ATTENTION,
               "sdpa_math": SDPBackend.MATH}[name]

    def run(q, k, v, causal):
        with sdpa_kernel(backend):
            if k.shape[1] != q.shape[1]:
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    return run


def measure(cfg, impl, fn, torch, do_bench):
    """Rows (one per pass) for one implementation on one configuration, and its output."""
    dtype = getattr(torch, cfg["dtype"])
    g = torch.Generator(device="cuda").manual_seed(0)
    b, h, kvh, n, d = cfg["batch"], cfg["heads"], cfg["kv_heads"], cfg["n"], cfg["d"]
    q = torch.randn(b, h, n, d, device="cuda", dtype=dtype, generator=g).requires_grad_()
    k = torch.randn(b, kvh, n, d, device="cuda", dtype=dtype, generator=g).requires_grad_()
    v = torch.randn(b, kvh, n, d, device="cuda", dtype=dtype, generator=g).requires_grad_()
    do = torch.randn(b, h, n, d, device="cuda", dtype=dtype, generator=g)
    causal = cfg["causal"]
    rows, out = [], None
    try:
        out = fn(q, k, v, causal)
        o = out
        times = {
            "fwd": do_bench(lambda: fn(q, k, v, causal), return_mode="median"),
            "bwd": do_bench(lambda: o.backward(do, retain_graph=True), grad_to_none=[q, k, v],
                            return_mode="median"),
            "fwd+bwd": do_bench(lambda: fn(q, k, v, causal).backward(do), grad_to_none=[q, k, v],
                                return_mode="median"),
        }
        for pass_ in PASSES:
            ms = float(times[pass_])
            tflops = attention_tflop(b, h, n, d, causal, pass_) / (ms / 1e3)
            rows.append(dict(cfg, impl=impl, **{"pass": pass_}, ms=ms, tflops=tflops, error=None))
        out = out.detach()
    except (RuntimeError, ValueError) as err:  # unsupported configuration, out of memory
        message = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        rows = [dict(cfg, impl=impl, **{"pass": p}, ms=None, tflops=None, error=message) for p in PASSES]
        out = None
    return rows, out


def slug(device_name):
    return re.sub(r"[^a-z0-9]+", "_", device_name.lower()).strip("_") or "gpu"


def write_atomically(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def plot(results, path: Path):
    """TFLOP/s against N: one panel per (pass, d, causal) for bfloat16 MHA, one line per impl."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results["rows"] if r["dtype"] == "bfloat16" and r["kv_heads"] == r["heads"]]
    panels = sorted({(r["d"], r["causal"]) for r in rows})
    if not panels:
        return
    fig, axes = plt.subplots(len(PASSES), len(panels), figsize=(4 * len(panels), 9), squeeze=False)
    for col, (d, causal) in enumerate(panels):
        for row, pass_ in enumerate(PASSES):
            ax = axes[row][col]
            for impl in IMPLS:
                pts = sorted((r["n"], r["tflops"]) for r in rows if r["impl"] == impl and r["pass"] == pass_
                             and r["d"] == d and r["causal"] == causal and r["tflops"] is not None)
                if pts:
                    ax.plot(*zip(*pts), "o-", label=impl)
            ax.set(xscale="log", xlabel="sequence length N", ylabel="TFLOP/s",
                   title=f"{pass_}, d={d}, {'causal' if causal else 'full'}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f"{results['device']}: bfloat16, B={rows[0]['batch']}, H={rows[0]['heads']}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_atomically(path, buf.getvalue())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="bfloat16, D=128, N in {1k, 4k} only")
    parser.add_argument("--max-n", type=int, default=16384, help="skip longer sequences")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--math-max-n", type=int, default=4096,
                        help="the math backend stores the N×N matrix: skip it above this N")
    parser.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated subset of {IMPLS}")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        sys.exit("bench_flash.py needs a CUDA GPU (torch.cuda.is_available() is False); nothing was "
                 "measured and nothing was written.")
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        sys.exit("unset TRITON_INTERPRET: the benchmark measures the compiled kernels.")
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    unknown = sorted(set(impls) - set(IMPLS))
    if unknown:
        sys.exit(f"--impls: unknown {unknown}; choose from {IMPLS}")

    # Triton 3.9 warns that its default for fused multiply-add will change; keep today's (on).
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    import torch.nn.functional as F
    import triton
    from triton.testing import do_bench

    from roadmap_lib.kernels import flash_attention

    device = torch.cuda.get_device_name()
    results = {
        "device": device,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "flops": "fwd 4*B*H*N^2*D (halved when causal); bwd 2.5x fwd; fwd+bwd 3.5x fwd",
        "rows": [],
        "max_abs_error_vs_sdpa": [],
    }
    fns = {impl: make_impl(impl, torch, F, flash_attention) for impl in impls}
    configs = list(sweep(args))
    for i, cfg in enumerate(configs, 1):
        outputs = {}
        for impl in impls:
            if impl == "sdpa_math" and cfg["n"] > args.math_max_n:
                continue
            rows, outputs[impl] = measure(cfg, impl, fns[impl], torch, do_bench)
            torch.cuda.empty_cache()  # the inputs of measure() are gone: release their memory
            results["rows"] += rows
            t = rows[0]["tflops"]
            print(f"[{i}/{len(configs)}] {cfg} {impl:>10}: fwd "
                  + (f"{t:7.1f} TFLOP/s, bwd {rows[1]['tflops']:7.1f}" if t is not None else rows[0]["error"]),
                  flush=True)
        ref = next((outputs[i] for i in ("sdpa_flash", "sdpa_cudnn", "sdpa_math") if outputs.get(i) is not None), None)
        if outputs.get("triton") is not None and ref is not None:
            err = (outputs["triton"].float() - ref.float()).abs().max().item()
            results["max_abs_error_vs_sdpa"].append(dict(cfg, max_abs_error=err))

    name = f"flash_{slug(device)}"
    json_path, png_path = args.out_dir / f"{name}.json", args.out_dir / f"{name}.png"
    write_atomically(json_path, (json.dumps(results, indent=1) + "\n").encode())
    plot(results, png_path)
    print(f"wrote {json_path} and {png_path}")


if __name__ == "__main__":
    main()
