"""Chapter 13's exercise checks: the right answers pass, and each declared mistake, written the way
a student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from roadmap_lib.chapters.ch13_flashattention_kernels import exercises as ex
from roadmap_lib.exercises import ExerciseError


def causal_tiled(q, k, v, block_m, block_n, *, hi=lambda start_m, bm, bn, n: min(n, start_m + bm),
                 mask=True, rescale=True):
    n, d = q.shape
    out, tiles = [], 0
    for start_m in range(0, n, block_m):
        qb = q[start_m:start_m + block_m]
        m = torch.full((len(qb), 1), -math.inf, dtype=q.dtype)
        l = torch.zeros(len(qb), 1, dtype=q.dtype)
        acc = torch.zeros(len(qb), d, dtype=q.dtype)
        for start_n in range(0, hi(start_m, block_m, block_n, n), block_n):
            s = qb @ k[start_n:start_n + block_n].T / math.sqrt(d)
            if mask:
                i = torch.arange(start_m, start_m + len(qb))[:, None]
                j = torch.arange(start_n, start_n + s.shape[1])[None, :]
                s = torch.where(j <= i, s, -math.inf)
            m_new = torch.maximum(m, s.max(-1, keepdim=True).values)
            p = torch.exp(s - m_new)
            l = l * torch.exp(m - m_new) + p.sum(-1, keepdim=True)
            acc = (acc * torch.exp(m - m_new) if rescale else acc) + p @ v[start_n:start_n + block_n]
            m, tiles = m_new, tiles + 1
        out.append(acc / l)
    return torch.cat(out), tiles


def merge_states(m1, l1, m2, l2):
    m = torch.maximum(m1, m2)
    return m, l1 * torch.exp(m1 - m) + l2 * torch.exp(m2 - m)


def attention_backward(q, k, v, do, *, scale_in_p=True, scale_dq=True, scale_dk=True, with_delta=True):
    c = q.shape[-1] ** -0.5
    p = F.softmax(q @ k.T * (c if scale_in_p else 1), dim=-1)
    dp = do @ v.T
    delta = (do * (p @ v)).sum(-1, keepdim=True) if with_delta else torch.zeros(())
    ds = p * (dp - delta)
    return ds @ k * (c if scale_dq else 1), ds.T @ q * (c if scale_dk else 1), p.T @ do


def test_right_answers_pass(capsys):
    ex.check_causal_tiled_attention(causal_tiled)
    ex.check_merge_states(merge_states)
    ex.check_attention_backward(attention_backward)
    ex.check_causal_kv_reads(lambda n, d, bm, bn: sum(2 * d * min(n, s + bm) for s in range(0, n, bm)))
    assert capsys.readouterr().out.count("Correct") == 4


def _named(check, fn, words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
        check(fn)


STUDENT_TILED = {
    "does not stop at the diagonal": lambda *a: causal_tiled(*a, hi=lambda s, bm, bn, n: n),
    "stops before the diagonal tile": lambda *a: causal_tiled(*a, hi=lambda s, bm, bn, n: s),
    "the key loop's limit is start_m + block_n": lambda *a: causal_tiled(*a, hi=lambda s, bm, bn, n: min(n, s + bn)),
    "the diagonal tile is not masked": lambda *a: causal_tiled(*a, mask=False),
    "the accumulator is not rescaled": lambda *a: causal_tiled(*a, rescale=False),
}


@pytest.mark.parametrize("words", list(STUDENT_TILED))
def test_each_causal_tiled_mistake_is_named(words):
    _named(ex.check_causal_tiled_attention, STUDENT_TILED[words], words)


STUDENT_MERGE = {
    "added without rescaling": lambda m1, l1, m2, l2: (torch.maximum(m1, m2), l1 + l2),
    "the sign of the exponent is flipped": lambda m1, l1, m2, l2: (
        torch.maximum(m1, m2), l1 / torch.exp(m1 - torch.maximum(m1, m2)) + l2 / torch.exp(m2 - torch.maximum(m1, m2))),
    "m is the first half's maximum": lambda m1, l1, m2, l2: (m1, l1 + l2 * torch.exp(m2 - m1)),
}


@pytest.mark.parametrize("words", list(STUDENT_MERGE))
def test_each_merge_states_mistake_is_named(words):
    _named(ex.check_merge_states, STUDENT_MERGE[words], words)


STUDENT_BACKWARD = {
    "left out of dQ and dK": lambda *a: attention_backward(*a, scale_dq=False, scale_dk=False),
    "applied to dQ but not to dK": lambda *a: attention_backward(*a, scale_dk=False),
    "Δ is left out": lambda *a: attention_backward(*a, with_delta=False),
    "P is recomputed without the scale": lambda *a: attention_backward(*a, scale_in_p=False),
}


@pytest.mark.parametrize("words", list(STUDENT_BACKWARD))
def test_each_attention_backward_mistake_is_named(words):
    _named(ex.check_attention_backward, STUDENT_BACKWARD[words], words)


def test_a_backward_that_returns_two_gradients_is_told_to_return_three():
    with pytest.raises(ExerciseError, match=r"should return 3 values \(dq, dk, dv\)"):
        ex.check_attention_backward(lambda q, k, v, do: attention_backward(q, k, v, do)[:2])


STUDENT_READS = {
    "each query block stops at start_m": lambda n, d, bm, bn: sum(2 * d * s for s in range(0, n, bm)),
    "only the keys are counted": lambda n, d, bm, bn: sum(d * min(n, s + bm) for s in range(0, n, bm)),
    "not clamped at n": lambda n, d, bm, bn: sum(2 * d * (s + bm) for s in range(0, n, bm)),
    "every query block reads all n keys and values": lambda n, d, bm, bn: len(range(0, n, bm)) * 2 * n * d,
}


@pytest.mark.parametrize("words", list(STUDENT_READS))
def test_each_causal_kv_reads_mistake_is_named(words):
    _named(ex.check_causal_kv_reads, STUDENT_READS[words], words)


@pytest.mark.parametrize("table, students", [
    (ex.CAUSAL_TILED_MISTAKES, STUDENT_TILED), (ex.MERGE_STATES_MISTAKES, STUDENT_MERGE),
    (ex.ATTENTION_BACKWARD_MISTAKES, STUDENT_BACKWARD), (ex.CAUSAL_KV_READS_MISTAKES, STUDENT_READS),
])
def test_every_declared_mistake_has_a_student_version(table, students):
    assert {d for d in table for words in students if words in d} == set(table)


def test_an_unwritten_answer_is_reported():
    def stub(*args):
        raise NotImplementedError

    for check in (ex.check_causal_tiled_attention, ex.check_merge_states, ex.check_attention_backward,
                  ex.check_causal_kv_reads):
        with pytest.raises(ExerciseError, match="not written yet"):
            check(stub)


# ---- exercise 13.5: peak memory, predicted then measured -------------------------------------------

def peak_bytes(n, d, *, n_by_n=3, kv_copies=2, bytes_per_value=4):
    """A student's prediction: the n×n matrices alive at once, the copies of K and V, the output."""
    naive = n_by_n * n * n + kv_copies * n * d + n  # scores, the K/V copies, lse
    tiled = (1 + kv_copies) * n * d + n  # output, the K/V copies, lse
    return naive * bytes_per_value, tiled * bytes_per_value


@pytest.mark.slow
def test_peak_memory_right_prediction_passes_and_prints_both(capsys):
    """About 3 s of CPU: it measures both attentions at the exercise's two sizes (then cached)."""
    measured = ex.check_peak_memory(peak_bytes)
    out = capsys.readouterr().out
    assert "Correct" in out and "predicted" in out and "measured" in out
    assert set(measured) == set(ex.PEAK_CASES)
    for (n, d), (naive, tiled) in measured.items():
        assert naive == 4 * (3 * n * n + 2 * n * d + n)  # three n×n float32 matrices at the peak, exactly
        assert 4 * (3 * n * d + n) < tiled < 1.2 * 4 * (3 * n * d + n)  # n×d tensors plus a few tiles


def test_measured_peak_grows_quadratically_naive_and_linearly_tiled():
    # a tiled run twice as long holds about twice as much; a naive one about four times as much
    (naive_1, tiled_1), (naive_2, tiled_2) = ex.measured_peak_bytes(512, 64), ex.measured_peak_bytes(1024, 64)
    assert 3.8 < naive_2 / naive_1 < 4.0 and 1.6 < tiled_2 / tiled_1 < 2.0
    with pytest.raises(ValueError, match="n, d: expected positive ints"):
        ex.measured_peak_bytes(0, 64)


STUDENT_PEAK = {
    "two n×n matrices (S and P": lambda n, d: peak_bytes(n, d, n_by_n=2),
    "four n×n matrices": lambda n, d: peak_bytes(n, d, n_by_n=4),
    "one n×n matrix": lambda n, d: peak_bytes(n, d, n_by_n=1),
    "counts only the output and lse": lambda n, d: (peak_bytes(n, d)[0], 4 * (n * d + n)),
    "the tiled peak is as large as the naive one": lambda n, d: (peak_bytes(n, d)[0],) * 2,
    "in floats, not bytes": lambda n, d: peak_bytes(n, d, bytes_per_value=1),
    "2 bytes per value": lambda n, d: peak_bytes(n, d, bytes_per_value=2),
}


@pytest.mark.parametrize("words", list(STUDENT_PEAK))
def test_each_peak_memory_mistake_is_named(words):
    _named(ex.check_peak_memory, STUDENT_PEAK[words], words)


def test_every_peak_memory_mistake_has_a_student_version():
    assert {d for d in ex.PEAK_MISTAKES for words in STUDENT_PEAK if words in d} == set(ex.PEAK_MISTAKES)


def test_an_unwritten_peak_prediction_is_reported():
    def stub(n, d):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not written yet"):
        ex.check_peak_memory(stub)
