"""Counting the bytes attention moves between GPU main memory (HBM) and the chip (chapter 13).

A GPU computes far faster than it reads HBM (an H100: ~1000 TFLOP/s of bf16 matmul against ~3 TB/s),
so for attention the question is how many bytes go through HBM, not how many FLOPs are done.
Two schedules for one ``(batch, heads)`` slice with ``Lq`` queries, ``Lk`` keys, head dim ``d``:

* **naive** (three kernels, the score matrix in HBM): read Q, K, write S = QKᵀ; read S, write
  P = softmax(S); read P and V, write O. The ``Lq × Lk`` matrix crosses HBM four times.
* **tiled** (FlashAttention-2's forward, the schedule of ``kernels/flash.py``): each
  query block of ``block_m`` rows is read once and stays on chip while every key/value block it
  needs streams past it; O and the log-sum-exp are written once. K and V are read once per query
  block: ``ceil(Lq / block_m)`` times in all (about half of that when causal).

:func:`flash_attention_traffic` counts by walking the kernel's loops, tile by tile, so a reader can
check the closed form against it. Element sizes are bytes per element (2 for bf16/fp16).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class HBMTraffic:
    """Bytes read from and written to HBM."""

    reads: int
    writes: int

    @property
    def total(self) -> int:
        return self.reads + self.writes


def _check(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")


def attention_flops(batch: int, heads: int, lq: int, lk: int, d: int, causal: bool = False) -> float:
    """Matmul FLOPs of the attention forward: 2·Lq·Lk·d for QKᵀ and as many for PV, per head
    (halved when causal, the convention of FlashAttention's benchmarks). Backward: 2.5× this."""
    _check(batch=batch, heads=heads, lq=lq, lk=lk, d=d)
    flops = 4.0 * batch * heads * lq * lk * d
    return flops / 2 if causal else flops


def naive_attention_traffic(batch: int, heads: int, lq: int, lk: int, d: int,
                            bytes_per_element: int = 2) -> HBMTraffic:
    """HBM bytes of the three-kernel forward that stores S and P (no masking shortcut)."""
    _check(batch=batch, heads=heads, lq=lq, lk=lk, d=d, bytes_per_element=bytes_per_element)
    q, kv, o, scores = lq * d, lk * d, lq * d, lq * lk
    reads = (q + kv) + scores + (scores + kv)  # QKᵀ; softmax; PV
    writes = scores + scores + o  # S; P; O
    n, e = batch * heads, bytes_per_element
    return HBMTraffic(reads=n * reads * e, writes=n * writes * e)


def flash_attention_traffic(batch: int, heads: int, lq: int, lk: int, d: int, *,
                            block_m: int = 128, block_n: int = 64, causal: bool = False,
                            bytes_per_element: int = 2, lse_bytes: int = 4) -> HBMTraffic:
    """HBM bytes of the tiled forward, counted by walking the kernel's loops.

    Per query block: read its Q rows; for each key block the loop visits (all of them, or up to
    the diagonal when causal) read those K and V rows; write O rows and one float32 lse per row.
    Rows past the end of a sequence are masked loads: they cost nothing and are not counted.
    """
    _check(batch=batch, heads=heads, lq=lq, lk=lk, d=d, block_m=block_m, block_n=block_n,
           bytes_per_element=bytes_per_element)
    if causal and lq != lk:
        raise ValueError(f"causal=True needs lq == lk, got lq={lq}, lk={lk}")
    reads = writes = 0
    for start_m in range(0, lq, block_m):  # one program per query block
        rows = min(block_m, lq - start_m)
        reads += rows * d * bytes_per_element  # Q block, once
        hi = min(lk, start_m + block_m) if causal else lk
        for start_n in range(0, hi, block_n):  # the loop inside the program
            cols = min(block_n, lk - start_n)
            reads += 2 * cols * d * bytes_per_element  # K block and V block
        writes += rows * d * bytes_per_element + rows * lse_bytes  # O block and lse
    n = batch * heads
    return HBMTraffic(reads=n * reads, writes=n * writes)


def flash_reads_closed_form(batch: int, heads: int, lq: int, lk: int, d: int, *,
                            block_m: int = 128, bytes_per_element: int = 2) -> int:
    """Non-causal tiled reads in closed form: Q once, K and V ``ceil(Lq / block_m)`` times."""
    return batch * heads * bytes_per_element * (lq * d + math.ceil(lq / block_m) * 2 * lk * d)


__all__ = [
    "HBMTraffic", "attention_flops", "flash_attention_traffic", "flash_reads_closed_form",
    "naive_attention_traffic",
]
