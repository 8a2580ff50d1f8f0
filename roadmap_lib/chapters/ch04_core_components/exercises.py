"""The checks of chapter 04's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own test cases and reference answers (the notebook does not need the
reference in scope, so a student cannot pass by calling it) and declares, as small wrong
implementations, the mistakes it names in plain words when an answer matches one of them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from roadmap_lib.attention import sliding_window_mask
from roadmap_lib.exercises import check_function, check_true

# ---- exercise 04.1: causal attention -------------------------------------------------------------


def _attention(q, k, v, *, scale=True, mask="causal", softmax_dim=-1):
    L, d = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1)
    if scale:
        scores = scores / math.sqrt(d)
    if mask == "causal":
        scores = scores.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))
    elif mask == "diagonal too":
        scores = scores.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(0), float("-inf"))
    elif mask == "one ahead":
        scores = scores.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(2), float("-inf"))
    return scores.softmax(softmax_dim).nan_to_num(0.0) @ v


CAUSAL_ATTENTION_MISTAKES = {
    "the scores are not scaled by 1/√d (d = the head width)":
        lambda q, k, v: _attention(q, k, v, scale=False),
    "the causal mask is missing: every query also sees the keys after it":
        lambda q, k, v: _attention(q, k, v, mask=None),
    "the mask is shifted by one and hides the query's own position (the diagonal)":
        lambda q, k, v: _attention(q, k, v, mask="diagonal too"),
    "the mask is shifted by one and lets each query see the next key":
        lambda q, k, v: _attention(q, k, v, mask="one ahead"),
    "the softmax runs over the queries (dim -2) instead of the keys (dim -1)":
        lambda q, k, v: _attention(q, k, v, softmax_dim=-2),
    "the scores are divided by d instead of √d":
        lambda q, k, v: _attention(q * (1 / math.sqrt(q.shape[-1])), k, v),
}


def causal_attention_cases() -> list[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
    cases = []
    for seed, shape in [(0, (1, 1, 4, 8)), (1, (2, 3, 7, 16)), (2, (1, 2, 12, 4))]:
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(*shape, generator=g) for _ in range(3))
        cases.append(((q, k, v), F.scaled_dot_product_attention(q, k, v, is_causal=True)))
    return cases


def check_causal_attention(fn) -> None:
    """Exercise 04.1: ``fn(q, k, v)`` is causal scaled dot-product attention."""
    check_function(fn, causal_attention_cases(), mistakes=CAUSAL_ATTENTION_MISTAKES)


# ---- exercise 04.2: RMSNorm ----------------------------------------------------------------------

RMS_NORM_MISTAKES = {
    "eps is added outside the square root (it belongs inside, with the mean square)":
        lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w,
    "the mean square is taken over the first dimension instead of the last":
        lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps) * w,
    "the mean is subtracted first: that is LayerNorm, RMSNorm does not centre":
        lambda x, w, eps: (x - x.mean(-1, keepdim=True))
        * torch.rsqrt((x - x.mean(-1, keepdim=True)).pow(2).mean(-1, keepdim=True) + eps) * w,
    "the weight is missing": lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps),
    "it divides by the mean square, not its square root":
        lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True) + eps) * w,
}


def check_rms_norm(fn) -> None:
    """Exercise 04.2: ``fn(x, weight, eps)`` is RMSNorm over the last dimension."""
    cases = []
    for seed, eps in [(0, 1e-6), (1, 1e-2), (2, 0.5)]:
        g = torch.Generator().manual_seed(seed)
        x, w = torch.randn(3, 5, 16, generator=g) * 4, torch.randn(16, generator=g)
        cases.append(((x, w, eps), F.rms_norm(x, (16,), w, eps)))
    check_function(fn, cases, mistakes=RMS_NORM_MISTAKES)


# ---- exercise 04.3: the size of a KV cache -------------------------------------------------------

KV_CACHE_MISTAKES = {
    "only the keys are counted: the cache holds a key and a value per position":
        lambda n, h, d, L, b, B: torch.tensor(n * h * d * L * b * B),
    "the bytes per value are left out (the answer is in values, not bytes)":
        lambda n, h, d, L, b, B: torch.tensor(2 * n * h * d * L * b),
    "the batch is left out: every sequence of the batch has its own cache":
        lambda n, h, d, L, b, B: torch.tensor(2 * n * h * d * L * B),
}


def check_kv_cache_bytes(fn) -> None:
    """Exercise 04.3: ``fn(n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_value)``."""
    check_function(fn, [
        ((1, 1, 1, 1, 1, 1), torch.tensor(2)),
        ((32, 32, 128, 4096, 1, 4), torch.tensor(2 * 32 * 32 * 128 * 4096 * 4)),
        ((80, 8, 128, 4096, 4, 2), torch.tensor(2 * 80 * 8 * 128 * 4096 * 4 * 2)),
    ], mistakes=KV_CACHE_MISTAKES)
    gqa, mha = fn(80, 8, 128, 4096, 1, 2), fn(80, 64, 128, 4096, 1, 2)
    check_true(mha == 8 * gqa, fail=f"expected MHA's cache to be 8x GQA's, got {mha / gqa:g}x",
               success=f"GQA: {gqa / 2**30:.2f} GiB per 4096-token sequence, MHA would need "
                       f"{mha / 2**30:.2f} GiB")


# ---- exercise 04.4: a sliding-window mask --------------------------------------------------------


def _band(L, lo, hi):
    """True where ``lo <= i - j <= hi`` (query i, key j)."""
    d = torch.arange(L)[:, None] - torch.arange(L)[None, :]
    return (d >= lo) & (d <= hi)


WINDOW_MASK_MISTAKES = {
    "the window is one too wide: query i sees w + 1 keys (i − w … i); with its own position it "
    "should see w (i − w + 1 … i)": lambda L, w: _band(L, 0, w),
    "the query's own position is left out: the w keys include the diagonal":
        lambda L, w: _band(L, 1, w - 1),
    "the causal part is missing: the window also reaches w − 1 keys into the future":
        lambda L, w: _band(L, -(w - 1), w - 1),
    "only the causal mask: the keys further back than w − 1 positions are not forgotten":
        lambda L, w: _band(L, 0, L),
}


def check_window_mask(fn) -> None:
    """Exercise 04.4: ``fn(L, w)`` is the causal sliding-window mask (True = may attend)."""
    check_function(fn, [((L, w), sliding_window_mask(L, w)) for L, w in [(5, 1), (6, 3), (8, 8), (7, 20)]],
                   mistakes=WINDOW_MASK_MISTAKES)
    reach = torch.eye(12, dtype=torch.bool)[-1]
    for _ in range(4):
        reach = (reach.float() @ fn(12, 3).float()).bool()
    check_true(int(reach.sum()) == 9, fail=f"expected 9 positions in reach, got {int(reach.sum())}",
               success="after 4 layers of window 3, the last position sees 1 + 4·2 = 9 positions")
