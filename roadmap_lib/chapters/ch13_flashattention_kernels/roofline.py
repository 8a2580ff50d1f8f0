"""The roofline model (Williams et al. 2009) for chapter 13: is attention limited by memory or by compute?

A kernel that does ``F`` FLOPs while moving ``Q`` bytes through main memory has *arithmetic
intensity* ``I = F / Q`` (FLOPs per byte). On a machine with peak compute ``P`` (FLOP/s) and memory
bandwidth ``B`` (bytes/s) it can reach at most ``min(P, I * B)``: below the *ridge point* ``P / B``
the kernel waits for memory, above it for the arithmetic units. The intensities of the two
attention schedules come from :mod:`~roadmap_lib.chapters.ch13_flashattention_kernels.io_complexity`'s
byte counts; the machines are a published GPU specification (:data:`H100_SXM`, no measurement) and
this CPU as ``benchmarks/bench_roofline.py`` measured it (``benchmarks/results/roofline.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from roadmap_lib.chapters.ch13_flashattention_kernels.io_complexity import (
    attention_flops,
    flash_attention_traffic,
    naive_attention_traffic,
)
from roadmap_lib.chapters.ch13_flashattention_kernels.plots import RESULTS_DIR

ROOFLINE_RESULTS = RESULTS_DIR / "roofline.json"


@dataclass(frozen=True)
class Machine:
    """A roof: peak FLOP/s, memory bytes/s, the element size its attention runs in, and where the
    numbers come from."""

    name: str
    peak_flop_per_s: float
    bytes_per_s: float
    bytes_per_element: int
    source: str

    def __post_init__(self) -> None:
        for field in ("peak_flop_per_s", "bytes_per_s"):
            value = getattr(self, field)
            if not value > 0:
                raise ValueError(f"{field}: expected a positive number, got {value!r}")

    @property
    def ridge(self) -> float:
        """FLOPs per byte above which a kernel is compute-bound: peak / bandwidth."""
        return self.peak_flop_per_s / self.bytes_per_s

    def attainable(self, intensity: float) -> float:
        """The roofline: the most FLOP/s a kernel of this arithmetic intensity can reach."""
        if not intensity > 0:
            raise ValueError(f"intensity: expected a positive number of FLOPs per byte, got {intensity!r}")
        return min(self.peak_flop_per_s, intensity * self.bytes_per_s)


#: NVIDIA's published specification of the H100 SXM5 (H100 Tensor Core GPU datasheet): dense
#: bfloat16 Tensor Core matmul (1,979 TFLOP/s is with 2:4 sparsity; half of it is dense) and HBM3
#: bandwidth. Not measured here.
H100_SXM = Machine("H100 SXM (published specification)", 989.5e12, 3.35e12, 2,
                   "NVIDIA H100 Tensor Core GPU datasheet: 989.5 TFLOP/s dense bf16, 3.35 TB/s HBM3")


def load_cpu(path: Path | str | None = None) -> Machine:
    """This CPU's roof as ``benchmarks/bench_roofline.py`` measured it (float32, one thread)."""
    path = Path(path) if path is not None else ROOFLINE_RESULTS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python benchmarks/bench_roofline.py`")
    r = json.loads(path.read_text(encoding="utf-8"))
    return Machine(f"this CPU, 1 thread (measured {r['date'][:10]})", r["matmul"]["flop_per_s"],
                   r["copy"]["bytes_per_s"], 4, f"{path.name}: float32 matmul of {r['matmul']['size']}², "
                   f"a copy of {r['copy']['buffer_mib']} MiB")


def attention_intensity(schedule: str, n: int, d: int, *, batch: int = 1, heads: int = 1,
                        bytes_per_element: int = 2, block_m: int = 128, block_n: int = 64) -> float:
    """FLOPs per HBM byte of the attention forward (non-causal, ``n`` queries and keys, head dim
    ``d``) for ``schedule`` "naive" (S and P through memory) or "tiled" (FlashAttention-2)."""
    flops = attention_flops(batch, heads, n, n, d)
    if schedule == "naive":
        traffic = naive_attention_traffic(batch, heads, n, n, d, bytes_per_element=bytes_per_element)
    elif schedule == "tiled":
        traffic = flash_attention_traffic(batch, heads, n, n, d, block_m=block_m, block_n=block_n,
                                          bytes_per_element=bytes_per_element)
    else:
        raise ValueError(f"schedule: expected 'naive' or 'tiled', got {schedule!r}")
    return flops / traffic.total


def plot_roofline(machines: list[Machine], points: dict[str, dict[str, float]], ax=None):
    """Each machine's roof (log-log: attainable FLOP/s against FLOPs per byte) with its ridge
    point, and ``points[machine name][label] = intensity`` marked on that machine's roof."""
    import matplotlib.pyplot as plt

    ax = ax if ax is not None else plt.subplots(figsize=(8, 4.5))[1]
    lo = min([m.ridge for m in machines] + [i for p in points.values() for i in p.values()]) / 8
    hi = max([m.ridge for m in machines] + [i for p in points.values() for i in p.values()]) * 8
    xs = [lo * (hi / lo) ** (k / 200) for k in range(201)]
    markers = ["o", "s", "^", "D", "v", "P"]
    for c, m in enumerate(machines):
        colour = f"C{c}"
        ax.plot(xs, [m.attainable(x) for x in xs], color=colour, lw=2, label=m.name)
        ax.axvline(m.ridge, color=colour, ls=":", lw=1)
        ax.annotate(f"ridge {m.ridge:.0f} FLOP/B", (m.ridge, m.peak_flop_per_s), textcoords="offset points",
                    xytext=(4, 6), color=colour, fontsize=8)
        for k, (label, intensity) in enumerate(points.get(m.name, {}).items()):
            ax.plot(intensity, m.attainable(intensity), markers[k % len(markers)], color=colour, ms=7,
                    markerfacecolor="white", label=f"{label} ({intensity:.0f} FLOP/B)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOPs per byte of main memory)")
    ax.set_ylabel("attainable FLOP/s")
    ax.set_title("Roofline: attention forward, naive against tiled")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    return ax


__all__ = ["H100_SXM", "ROOFLINE_RESULTS", "Machine", "attention_intensity", "load_cpu", "plot_roofline"]
