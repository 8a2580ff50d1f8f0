"""The checks of chapter 13's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (plain PyTorch attention, autograd, the
chapter's traffic count), so the notebook's namespace holds no reference a student could call, and
declares the usual wrong answers in plain words as small wrong functions: when an answer returns
what one of them returns, the message names that mistake. Everything here runs on the CPU and needs
no Triton. Exercise 13.5 is a "predict, then measure" exercise: its check compares a prediction with
the peak memory it measures, and names the tempting wrong predictions.
"""

from __future__ import annotations

import functools
import math

import torch

from roadmap_lib.chapters.ch13_flashattention_kernels.io_complexity import flash_attention_traffic
from roadmap_lib.exercises import check_function
from roadmap_lib.kernels.reference import naive_attention, tiled_attention_forward
from roadmap_lib.measure import peak_memory

# ---- exercise 13.1: the causal early exit ---------------------------------------------------------


def _causal_attention(q, k, v):
    n = q.shape[0]
    s = (q @ k.T / math.sqrt(q.shape[-1])).masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return s.softmax(-1) @ v


def _tiled(q, k, v, block_m, block_n, *, stop="diagonal", mask=True, rescale=True):
    """The online-softmax loop of ``tiled_attention_forward``, with the key loop's limit ``stop``."""
    n, d = q.shape
    o, tiles = torch.empty_like(q), 0
    for start_m in range(0, n, block_m):
        rows = torch.arange(start_m, min(n, start_m + block_m))
        limit = {"diagonal": min(n, start_m + block_m), "all": n, "before": start_m,
                 "block_n": min(n, start_m + block_n)}[stop]
        m_i = torch.full((len(rows),), float("-inf"), dtype=q.dtype)
        l_i = torch.zeros(len(rows), dtype=q.dtype)
        acc = torch.zeros(len(rows), d, dtype=q.dtype)
        for start_n in range(0, limit, block_n):
            cols = torch.arange(start_n, min(n, start_n + block_n))
            s = q[rows] @ k[cols].T / math.sqrt(d)
            if mask:
                s = s.masked_fill(cols[None, :] > rows[:, None], float("-inf"))
            m_new = torch.maximum(m_i, s.amax(-1))
            alpha, p = torch.exp(m_i - m_new), torch.exp(s - m_new[:, None])
            l_i = l_i * alpha + p.sum(-1)
            acc = (acc * alpha[:, None] if rescale else acc) + p @ v[cols]
            m_i, tiles = m_new, tiles + 1
        o[rows] = acc / l_i[:, None]
    return o, tiles


CAUSAL_TILED_MISTAKES = {
    "the key loop does not stop at the diagonal: every tile is computed (and masked), so the count is "
    "all tiles": lambda q, k, v, bm, bn: _tiled(q, k, v, bm, bn, stop="all"),
    "the key loop stops before the diagonal tile (at start_m): the tile that holds the diagonal is needed too":
        lambda q, k, v, bm, bn: _tiled(q, k, v, bm, bn, stop="before"),
    "the key loop's limit is start_m + block_n: it is the end of the query block, start_m + block_m":
        lambda q, k, v, bm, bn: _tiled(q, k, v, bm, bn, stop="block_n"),
    "the diagonal tile is not masked: inside it, a query still sees the keys after it":
        lambda q, k, v, bm, bn: _tiled(q, k, v, bm, bn, mask=False),
    "the accumulator is not rescaled by e^(m − m_new) when the running max grows":
        lambda q, k, v, bm, bn: _tiled(q, k, v, bm, bn, rescale=False),
}


def check_causal_tiled_attention(fn) -> None:
    """Exercise 13.1: ``fn(q, k, v, block_m, block_n)`` returns ``(o, tiles)``: causal attention
    of one head, and the number of tiles computed when each key loop stops at the diagonal."""
    cases = []
    for seed, (n, d, bm, bn) in enumerate([(50, 8, 16, 8), (33, 4, 8, 8), (20, 4, 8, 16)]):
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(3))
        tiles = sum(math.ceil(min(n, start_m + bm) / bn) for start_m in range(0, n, bm))
        cases.append(((q, k, v, bm, bn), (_causal_attention(q, k, v), tiles)))
    check_function(fn, cases, atol=1e-10, outputs=("o", "tiles"), mistakes=CAUSAL_TILED_MISTAKES)


# ---- exercise 13.2: merging two partial softmax states --------------------------------------------

MERGE_STATES_MISTAKES = {
    "the partial sums are added without rescaling them to the common maximum":
        lambda m1, l1, m2, l2: (torch.maximum(m1, m2), l1 + l2),
    "the rescaling factor is e^(m − m_i) instead of e^(m_i − m): the sign of the exponent is flipped":
        lambda m1, l1, m2, l2: (torch.maximum(m1, m2), l1 * torch.exp(torch.maximum(m1, m2) - m1)
                                + l2 * torch.exp(torch.maximum(m1, m2) - m2)),
    "m is the first half's maximum: the whole row's maximum is the larger of m1 and m2":
        lambda m1, l1, m2, l2: (m1, l1 + l2 * torch.exp(m2 - m1)),
}


def _state(x):
    m = x.amax(-1)
    return m, torch.exp(x - m[..., None]).sum(-1)


def check_merge_states(fn) -> None:
    """Exercise 13.2: ``fn(m1, l1, m2, l2)`` returns the state ``(m, l)`` of the whole row."""
    cases = []
    for seed, (rows, split, width) in enumerate([(4, 11, 30), (3, 1, 9), (5, 20, 21)]):
        x = 5 * torch.randn(rows, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        cases.append(((*_state(x[:, :split]), *_state(x[:, split:])), _state(x)))
    check_function(fn, cases, outputs=("m", "l"), mistakes=MERGE_STATES_MISTAKES)


# ---- exercise 13.3: the attention backward by hand ------------------------------------------------


def _backward(q, k, v, do, *, scale_p=True, scale_dq=True, scale_dk=True, delta=True):
    scale = 1 / math.sqrt(q.shape[-1])
    p = torch.softmax(q @ k.T * (scale if scale_p else 1.0), -1)
    o = p @ v
    dp = do @ v.T
    ds = p * (dp - ((do * o).sum(-1, keepdim=True) if delta else 0))
    return ds @ k * (scale if scale_dq else 1.0), ds.T @ q * (scale if scale_dk else 1.0), p.T @ do


ATTENTION_BACKWARD_MISTAKES = {
    "the scale 1/√d is left out of dQ and dK (the scores are q·k/√d, so both gradients carry it)":
        lambda q, k, v, do: _backward(q, k, v, do, scale_dq=False, scale_dk=False),
    "the scale 1/√d is applied to dQ but not to dK":
        lambda q, k, v, do: _backward(q, k, v, do, scale_dk=False),
    "Δ is left out: dS = P ∘ (dP − Δ), the softmax's backward subtracts Δ_i = dO_i · O_i":
        lambda q, k, v, do: _backward(q, k, v, do, delta=False),
    "P is recomputed without the scale: it is softmax(q kᵀ / √d)":
        lambda q, k, v, do: _backward(q, k, v, do, scale_p=False),
}


def check_attention_backward(fn) -> None:
    """Exercise 13.3: ``fn(q, k, v, do)`` returns ``(dq, dk, dv)`` of unmasked attention (one head)."""
    cases = []
    for seed, (lq, lk, d) in enumerate([(9, 13, 8), (5, 5, 4), (6, 11, 16)]):
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True) for n in (lq, lk, lk))
        do = torch.randn(lq, d, generator=g, dtype=torch.float64)
        scores = q @ k.T / math.sqrt(d)
        expected = torch.autograd.grad(scores.softmax(-1) @ v, (q, k, v), do)
        cases.append(((q.detach(), k.detach(), v.detach(), do), tuple(expected)))
    check_function(fn, cases, atol=1e-10, outputs=("dq", "dk", "dv"), mistakes=ATTENTION_BACKWARD_MISTAKES)


# ---- exercise 13.4: bytes of the causal schedule --------------------------------------------------

CAUSAL_KV_READS_MISTAKES = {
    "each query block stops at start_m: the rows of its own diagonal tile are read too":
        lambda n, d, bm, bn: sum(2 * start_m * d for start_m in range(0, n, bm)),
    "only the keys are counted: the values are read as well (twice the elements)":
        lambda n, d, bm, bn: sum(min(n, start_m + bm) * d for start_m in range(0, n, bm)),
    "the reads are not clamped at n: the last query block reads past the end of the sequence":
        lambda n, d, bm, bn: sum(2 * (start_m + bm) * d for start_m in range(0, n, bm)),
    "every query block reads all n keys and values: that is the non-causal schedule":
        lambda n, d, bm, bn: 2 * n * d * math.ceil(n / bm),
}


def check_causal_kv_reads(fn) -> None:
    """Exercise 13.4: ``fn(n, d, block_m, block_n)`` is the number of K and V elements the causal
    forward kernel reads for one head (compared with :func:`flash_attention_traffic`)."""
    cases = []
    for n, d, bm, bn in [(1000, 64, 128, 64), (4096, 128, 64, 32), (77, 16, 16, 16)]:
        t = flash_attention_traffic(1, 1, n, n, d, block_m=bm, block_n=bn, causal=True, bytes_per_element=1)
        cases.append(((n, d, bm, bn), float(t.reads - n * d)))  # minus the Q reads
    check_function(fn, cases, atol=0.5, rtol=0, mistakes=CAUSAL_KV_READS_MISTAKES)


# ---- exercise 13.5: peak memory of naive and tiled attention, predicted then measured ------------

#: The tile sizes of the measured tiled forward, stated in the exercise.
PEAK_BLOCK = 64
#: (n, d) of the measured cases: large enough that the tile-sized scratch of the tiled forward is a
#: small part of its peak (about 11-13% at these sizes, inside the stated 20% tolerance).
PEAK_CASES = ((1024, 64), (1536, 32))
#: A prediction within this fraction of the measured bytes passes (stated in the exercise).
PEAK_RTOL = 0.2


@functools.lru_cache(maxsize=8)
def measured_peak_bytes(n: int, d: int, *, seed: int = 0) -> tuple[int, int]:
    """Peak bytes of the tensors that ``naive_attention`` and ``tiled_attention_forward`` (blocks of
    ``PEAK_BLOCK``) allocate beyond their inputs, for one head of length ``n``, float32, not causal.

    Measured with :func:`roadmap_lib.measure.peak_memory`, which sees every tensor an operator
    returns. The inputs are made inside the measured call (so a view of them is never counted as
    a new allocation) and their bytes are then taken off: they are alive for the whole call. The
    count is deterministic, so a second call with the same arguments returns the first result.
    """
    if not all(isinstance(x, int) and x > 0 for x in (n, d)):
        raise ValueError(f"n, d: expected positive ints, got n={n!r}, d={d!r}")
    inputs = 3 * n * d * 4

    def run(attention):
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(1, 1, n, d, generator=g) for _ in range(3))
        attention(q, k, v)

    naive = peak_memory(lambda: run(naive_attention)) - inputs
    tiled = peak_memory(lambda: run(lambda q, k, v: tiled_attention_forward(
        q, k, v, block_m=PEAK_BLOCK, block_n=PEAK_BLOCK))) - inputs
    return naive, tiled


def _naive_floats(n, d, score_matrices=3):
    return score_matrices * n * n + 2 * n * d + n


def _tiled_floats(n, d, kv_copies=True):
    return (3 if kv_copies else 1) * n * d + n


PEAK_MISTAKES = {
    "the naive peak holds two n×n matrices (S and P, the textbook count): the eager code holds three "
    "at once, s, s − lse and exp(s − lse), while exp runs":
        lambda n, d: (4 * _naive_floats(n, d, 2), 4 * _tiled_floats(n, d)),
    "the naive peak holds four n×n matrices: the unscaled q kᵀ is freed once `* scale` has made s, "
    "before the three of the softmax exist":
        lambda n, d: (4 * _naive_floats(n, d, 4), 4 * _tiled_floats(n, d)),
    "the naive peak holds one n×n matrix: every elementwise step of the softmax makes a new one":
        lambda n, d: (4 * _naive_floats(n, d, 1), 4 * _tiled_floats(n, d)),
    "the tiled peak counts only the output and lse: `_expand_kv` (repeat_interleave) copies K and V "
    "as well, even with nothing to expand":
        lambda n, d: (4 * _naive_floats(n, d), 4 * _tiled_floats(n, d, kv_copies=False)),
    "the tiled peak is as large as the naive one: tiling never allocates an n×n matrix, only tiles":
        lambda n, d: (4 * _naive_floats(n, d), 4 * _naive_floats(n, d)),
    "the answer is in floats, not bytes (float32: 4 bytes each)":
        lambda n, d: (_naive_floats(n, d), _tiled_floats(n, d)),
    "2 bytes per value: the inputs here are float32, 4 bytes each":
        lambda n, d: (2 * _naive_floats(n, d), 2 * _tiled_floats(n, d)),
}


def check_peak_memory(fn) -> dict[tuple[int, int], tuple[int, int]]:
    """Exercise 13.5: ``fn(n, d)`` -> ``(naive_bytes, tiled_bytes)``, the predicted peak bytes that
    ``naive_attention`` and ``tiled_attention_forward`` (blocks of 64) allocate beyond their inputs
    for one head, float32, not causal; compared with :func:`measured_peak_bytes` within 20%.
    Prints both and returns the measurements, ``{(n, d): (naive_bytes, tiled_bytes)}``."""
    measured = {nd: measured_peak_bytes(*nd) for nd in PEAK_CASES}
    cases = [(nd, tuple(float(b) for b in measured[nd])) for nd in PEAK_CASES]
    check_function(fn, cases, name="predict_peak_bytes", outputs=("naive bytes", "tiled bytes"), atol=0,
                   rtol=PEAK_RTOL, mistakes=PEAK_MISTAKES)
    print(f"{'n':>5} {'d':>3} {'':>6} {'predicted':>11} {'measured':>11}")
    for (n, d), (naive, tiled) in measured.items():
        got = fn(n, d)
        for label, p, m in (("naive", got[0], naive), ("tiled", got[1], tiled)):
            print(f"{n:>5} {d:>3} {label:>6} {float(p):>11,.0f} {m:>11,}")
    return measured
