"""roadmap_lib.measure: threads, time, peak memory, parameter counts, KV-cache bytes."""

import pytest
import torch
from torch import nn

from roadmap_lib.measure import (
    count_parameters,
    cpu_threads,
    cpu_time_call,
    kv_cache_bytes,
    map_runs,
    peak_memory,
    time_call,
)


def test_peak_memory_sees_live_tensors_only():
    x = torch.randn(1000)  # created outside: not counted

    def two_alive():
        a = x * 2  # 4000 bytes
        b = a + 1  # 4000 bytes, both alive
        return b.sum()

    def one_at_a_time():
        for _ in range(3):
            (x * 2).sum()  # each product dies before the next one

    assert 8000 <= peak_memory(two_alive) < 8100
    assert 4000 <= peak_memory(one_at_a_time) < 4100




def test_cpu_threads_sets_and_always_restores():
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="boom"), cpu_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before  # restored after an error too
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n: expected a positive int"):
            with cpu_threads(bad):
                pass


def test_count_parameters_counts_tied_once_and_trainable_only():
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    model = nn.ModuleDict({"emb": emb, "head": head})
    assert count_parameters(model) == 80
    head.weight = emb.weight  # tied: one matrix
    assert count_parameters(model) == 40
    emb.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 0
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        count_parameters([1, 2])


def test_kv_cache_bytes_of_a_known_model():
    # Llama-2-70B: 80 layers, 8 kv heads of 128, fp16 -> 320 KiB per token
    assert kv_cache_bytes(80, 8, 128, 2) == 327_680
    assert kv_cache_bytes(80, 64, 128, 2) == 8 * kv_cache_bytes(80, 8, 128, 2)
    with pytest.raises(ValueError, match="n_kv_heads: expected a positive int"):
        kv_cache_bytes(80, 0, 128)


def test_time_call_is_the_fastest_repeat():
    calls = []
    assert time_call(lambda: calls.append(1), repeats=3) >= 0.0
    assert len(calls) == 4  # one warm-up + 3 timed
    with pytest.raises(ValueError, match="repeats"):
        time_call(lambda: None, repeats=0)


def test_cpu_time_call_counts_this_threads_work_not_its_sleep():
    import time

    calls = []
    assert cpu_time_call(lambda: calls.append(1), repeats=3) >= 0.0
    assert len(calls) == 4  # one warm-up + 3 timed
    # sleeping takes wall time but no CPU time; a busy loop of the same length takes both
    assert cpu_time_call(lambda: time.sleep(0.05), repeats=2) < 0.02

    def spin(seconds=0.05):
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    assert cpu_time_call(spin, repeats=2) >= 0.05
    x = torch.ones(3, requires_grad=True)  # autograd stays on: a backward pass can be timed
    cpu_time_call(lambda: (x * 2).sum().backward(), repeats=1)
    assert x.grad is not None
    with pytest.raises(ValueError, match="repeats"):
        cpu_time_call(lambda: None, repeats=0)


def test_a_storage_at_a_reused_address_is_counted():
    """A freed storage's address is often given to the next allocation; the stale record of the
    freed one must not hide the new storage (it did: the peak of a training step came out low)."""
    from torch.multiprocessing.reductions import StorageWeakRef

    from roadmap_lib.measure import PeakTensorMemory

    b = torch.ones(1 << 16)
    freed = StorageWeakRef(torch.ones(8).untyped_storage())  # its tensor is gone at once
    assert freed.expired()
    mode = PeakTensorMemory()
    with mode:
        mode.live[b.data_ptr()] = (freed, 32)  # as if a freed storage had lived at b's address
        b.add_(1)  # an operator that returns b
    assert mode.peak == b.untyped_storage().nbytes()


def _seeded_run(seed: int) -> tuple[int, float, int]:
    torch.manual_seed(seed)
    return seed, torch.randn(64, 64).matmul(torch.randn(64, 64)).sum().item(), torch.get_num_threads()


def test_map_runs_gives_the_same_ordered_results_for_any_number_of_jobs():
    one = list(map_runs(_seeded_run, range(5), jobs=1))
    two = list(map_runs(_seeded_run, range(5), jobs=2))
    assert one == two and [r[0] for r in one] == list(range(5))
    assert all(threads == 1 for *_, threads in one)  # every call on one thread
    before = torch.get_num_threads()
    list(map_runs(_seeded_run, [0], jobs=1))
    assert torch.get_num_threads() == before  # restored afterwards
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="jobs"):
            map_runs(_seeded_run, [0], jobs=bad)  # refused at the call, before anything runs
