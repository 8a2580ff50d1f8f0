"""Measuring models and runs: CPU threads (and seeded runs spread over worker processes), wall
time, peak tensor memory, parameter counts and the bytes a key/value cache costs.

Chapters that compare speed or size (04, 09, 12, 14, 15) import these instead of timing things by
hand, so that every number in the book is measured the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import partial

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` CPU threads, then restore the previous setting, even on an error.

    The book's models are so small that a second thread mostly adds synchronisation (on a busy
    2-core machine, waiting threads can make a run several times slower), and one thread gives the
    same sums, so the same numbers, on every machine: builds and drivers use ``cpu_threads(1)``.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n: expected a positive int number of threads, got {n!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _on_one_thread(fn: Callable, cell):
    with cpu_threads(1):
        return fn(cell)


def map_runs(fn: Callable, cells: Iterable, jobs: int = 1) -> Iterator:
    """``fn(cell)`` for every cell, in order, each call on one CPU thread, ``jobs`` worker processes
    at a time (``jobs=1``: in this process). A sweep's seeded runs give the same results whatever
    ``jobs`` is; with ``jobs > 1``, ``fn`` must be a module-level function (it is pickled). Results
    are yielded as they come, in the order of ``cells``, so a caller can print progress.
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs: expected a positive int number of processes, got {jobs!r}")
    call = partial(_on_one_thread, fn)

    def results() -> Iterator:
        if jobs == 1:
            yield from map(call, cells)
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                yield from pool.map(call, cells)

    return results()


class PeakTensorMemory(TorchDispatchMode):
    """Peak bytes of the tensors that operators create while the mode is active.

    Every operator call goes through ``__torch_dispatch__``; we remember each new output storage
    with a weak reference and, after each call, add up the storages that are still alive. Inputs
    created before the mode started do not count, nor does scratch memory a fused kernel uses
    internally without returning it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                s = t.untyped_storage()
                known = self.live.get(s.data_ptr())
                # a freed storage's address can be reused by a new one: replace the stale entry
                if known is None or known[0].expired():
                    self.live[s.data_ptr()] = (StorageWeakRef(s), s.nbytes())
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        self.peak = max(self.peak, sum(n for _, n in self.live.values()))
        return out


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes of tensors allocated while ``fn()`` runs (see :class:`PeakTensorMemory`)."""
    with torch.no_grad(), PeakTensorMemory() as mode:
        fn()
    return mode.peak


def _least_time(fn: Callable[[], object], repeats: int, clock: Callable[[], float]) -> float:
    """The least ``clock`` time of ``repeats`` calls of ``fn`` after one warm-up call."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected a positive int, got {repeats!r}")
    fn()
    best = math.inf
    for _ in range(repeats):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def time_call(fn: Callable[[], object], repeats: int = 5) -> float:
    """Fastest of ``repeats`` timed calls after one warm-up, in seconds (the least noisy choice)."""
    with torch.no_grad():
        return _least_time(fn, repeats, time.perf_counter)


def cpu_time_call(fn: Callable[[], object], repeats: int = 5) -> float:
    """Least CPU time of the calling thread over ``repeats`` calls after one warm-up, in seconds.

    CPU time (``time.thread_time``) counts only the time this thread ran, so other processes on a
    busy shared machine inflate it far less than wall time; with one thread and an idle machine the
    two agree. (It still feels a loaded machine's shared caches and memory bandwidth.) Unlike
    :func:`time_call` it does not switch off autograd: ``fn`` may run a backward pass.
    """
    return _least_time(fn, repeats, time.thread_time)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Distinct parameters of ``model`` (a tied matrix counts once: ``parameters()`` yields it
    once); with ``trainable_only``, only those with ``requires_grad``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def kv_cache_bytes(n_layers: int, n_kv_heads: int, head_dim: int, bytes_per_value: int = 2) -> int:
    """Bytes of key/value cache one more token costs: keys and values, every layer, every kv head."""
    for name, value in (("n_layers", n_layers), ("n_kv_heads", n_kv_heads), ("head_dim", head_dim),
                        ("bytes_per_value", bytes_per_value)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return 2 * n_layers * n_kv_heads * head_dim * bytes_per_value


__all__ = ["PeakTensorMemory", "count_parameters", "cpu_threads", "kv_cache_bytes", "map_runs",
           "peak_memory", "time_call"]
