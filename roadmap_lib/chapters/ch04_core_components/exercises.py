"""The checks of chapter 04's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own test cases and reference answers (the notebook does not need the
reference in scope, so a student cannot pass by calling it) and declares, as small wrong
implementations, the mistakes it names in plain words when an answer matches one of them.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from roadmap_lib.attention import sliding_window_mask
from roadmap_lib.exercises import check_function, check_true
from roadmap_lib.layers import BlockConfig, TransformerBlock

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


# ---- exercise 04.5: predict, then measure: the FLOPs of a training step through one block --------


@lru_cache(maxsize=64)
def measured_block_train_flops(d_model: int, seq_len: int, batch: int) -> int:
    """What ``torch.utils.flop_counter.FlopCounterMode`` counts for one forward and one backward pass
    through one pre-norm GPT-style :class:`~roadmap_lib.layers.TransformerBlock` (4 heads,
    d_ff = 4·d_model, biases, causal, the written-out attention) on an input ``(batch, seq_len,
    d_model)`` that requires a gradient, as it does inside a model. Built on the ``meta`` device:
    shapes only, no memory and no arithmetic, so GPT-2-sized blocks cost nothing to count. Cached:
    the same sizes are counted once."""
    for name, value in (("d_model", d_model), ("seq_len", seq_len), ("batch", batch)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if d_model % 4:
        raise ValueError(f"d_model: expected a multiple of the 4 heads, got {d_model}")
    cfg = BlockConfig(d_model=d_model, n_heads=4, d_ff=4 * d_model, causal=True)
    with torch.device("meta"):
        block = TransformerBlock(cfg)
        x = torch.zeros(batch, seq_len, d_model, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        block(x).sum().backward()
    return counter.get_total_flops()


def _step(d, T, B, *, weights=72, attention=12, per_token_attention=True):
    """FLOPs of a block's training step under a given (possibly wrong) accounting."""
    attn = attention * T * d if per_token_attention else attention * d
    return torch.tensor(B * T * weights * d * d + B * T * attn)


BLOCK_FLOPS_MISTAKES = {
    "only the forward pass is counted (2 FLOPs per weight per token): training also runs the "
    "backward pass, which costs twice the forward":
        lambda d, T, B: _step(d, T, B, weights=24, attention=4),
    "the backward pass is counted like the forward: it computes the gradients for the inputs AND "
    "for the weights, twice the forward's work":
        lambda d, T, B: _step(d, T, B, weights=48, attention=8),
    "the attention matrix products are missing: QKᵀ and the weights times V cost T·d multiply-adds "
    "per token each, and they have no parameters":
        lambda d, T, B: _step(d, T, B, attention=0),
    "this counts multiply-adds, not FLOPs: a multiply-add is 2 FLOPs":
        lambda d, T, B: _step(d, T, B, weights=36, attention=6),
    "the attention term is counted per sequence as if it were per token: each of the T queries "
    "meets T keys, so it grows like T² per sequence":
        lambda d, T, B: _step(d, T, B, per_token_attention=False),
}


def check_block_train_flops(fn) -> None:
    """Exercise 04.5: ``fn(d_model, seq_len, batch)`` predicts the FLOPs of one training step through
    one block; each case is compared with :func:`measured_block_train_flops`."""
    cases = [((d, T, B), torch.tensor(measured_block_train_flops(d, T, B)))
             for d, T, B in [(32, 16, 2), (64, 128, 1), (128, 8, 3), (768, 1024, 1)]]
    check_function(fn, cases, name="block_train_flops", mistakes=BLOCK_FLOPS_MISTAKES, rtol=0, atol=0.5)
    short, long = measured_block_train_flops(768, 128, 1), measured_block_train_flops(768, 2048, 1)
    check_true(long > 16 * short, fail=f"expected a 16 times longer sequence to cost more than 16 times "
                                       f"as much, measured {long / short:.1f} times",
               success=f"measured for a GPT-2-small block (d = 768): {long / short:.1f} times the FLOPs "
                       f"for 16 times the tokens (T = 128 -> 2048): the T² attention term takes over")
