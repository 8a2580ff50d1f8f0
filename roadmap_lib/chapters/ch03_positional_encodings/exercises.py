"""The checks of chapter 03's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (the library's sinusoidal table, ALiBi
slopes, RoPE and NTK base, each verified against transformers in the tests) and declares, as small
wrong implementations, the mistakes it names in plain words.
"""

from __future__ import annotations

import torch

from roadmap_lib.attention import scaled_dot_product_attention
from roadmap_lib.exercises import ExerciseError, _ok, check_close, check_function
from roadmap_lib.positional import alibi_bias, alibi_slopes, sinusoidal_encoding
from roadmap_lib.rope import RoPEConfig, apply_rope, ntk_scaled_base, rope_cos_sin

# ---- exercise 03.1: the sinusoidal table ---------------------------------------------------------


def _sinusoidal(seq_len, d_model, *, swap=False, pair_step=2, start=0, halves=False):
    pos = torch.arange(start, start + seq_len, dtype=torch.float32)[:, None]
    i = torch.arange(d_model // 2, dtype=torch.float32)
    omega = 10000.0 ** (-pair_step * i / d_model)
    sin, cos = torch.sin(pos * omega), torch.cos(pos * omega)
    if swap:
        sin, cos = cos, sin
    if halves:
        return torch.cat([sin, cos], dim=-1)
    table = torch.zeros(seq_len, d_model)
    table[:, 0::2], table[:, 1::2] = sin, cos
    return table


SINUSOIDAL_MISTAKES = {
    "sine and cosine are swapped: the even columns (2i) hold the sines, the odd ones the cosines":
        lambda n, d: _sinusoidal(n, d, swap=True),
    "the frequencies use i/d instead of 2i/d: omega_i = 10000^(-2i/d), i counting the pairs":
        lambda n, d: _sinusoidal(n, d, pair_step=1),
    "the positions start at 1: the first row is position p = 0 (all sines 0, all cosines 1)":
        lambda n, d: _sinusoidal(n, d, start=1),
    "the sines fill the first half and the cosines the second: the table interleaves them, "
    "sin in column 2i and cos in column 2i + 1":
        lambda n, d: _sinusoidal(n, d, halves=True),
}


def check_sinusoidal(fn) -> None:
    """Exercise 03.1: ``fn(seq_len, d_model)`` is Vaswani et al.'s (seq_len, d_model) table."""
    cases = [((n, d), sinusoidal_encoding(n, d)) for n, d in ((8, 4), (50, 16), (3, 64))]
    check_function(fn, cases, name="my_sinusoidal", mistakes=SINUSOIDAL_MISTAKES,
                   forbid=[sinusoidal_encoding])


# ---- exercise 03.2: ALiBi slopes ------------------------------------------------------------------


def _geometric(n, first=1):
    return torch.tensor([2.0 ** (-8.0 * (i + first) / n) for i in range(n)])


def _slopes(n, *, extra_from):
    """The paper's rule for n heads, but the n - m extra slopes taken from ``extra_from(2m slopes)``."""
    m = 1
    while m * 2 <= n:
        m *= 2
    slopes = _geometric(m)
    return torch.cat([slopes, extra_from(_geometric(2 * m))[: n - m]]) if m < n else slopes


ALIBI_MISTAKES = {
    "the power-of-two rule is used for every count: for n heads that are not a power of two, take "
    "the slopes of the largest power of two below n, then every other slope of twice that many":
        lambda n: _geometric(n),
    "the extra slopes are the first n - m of the 2m sequence: take them at every other place "
    "(its 1st, 3rd, 5th, ...)":
        lambda n: _slopes(n, extra_from=lambda s: s),
    "the extra slopes are taken at the even places (2nd, 4th, ...): those repeat slopes already "
    "used; take the 1st, 3rd, 5th, ...":
        lambda n: _slopes(n, extra_from=lambda s: s[1::2]),
    "the sequence starts at 2^0 = 1: the first slope is 2^(-8/n), the last 2^(-8)":
        lambda n: _geometric(n, first=0),
}


def check_alibi_slopes(fn) -> None:
    """Exercise 03.2: ``fn(num_heads)`` is Press et al.'s slopes for any number of heads."""
    cases = [((n,), alibi_slopes(n)) for n in (1, 4, 6, 8, 12, 20)]
    check_function(fn, cases, name="my_alibi_slopes", rtol=1e-6, mistakes=ALIBI_MISTAKES,
                   forbid=[alibi_slopes])


# ---- exercise 03.3: interleaved RoPE ----------------------------------------------------------------


def _rope(x, positions, base=10000.0, *, sign=1.0, pair_step=2, halves=False, own_positions=False):
    d = x.shape[-1]
    theta = base ** (-pair_step * torch.arange(d // 2, dtype=torch.float32) / d)
    pos = torch.arange(x.shape[-2]) if own_positions else positions
    phi = pos.float()[:, None] * theta
    if halves:
        a, b = x[..., : d // 2], x[..., d // 2:]
    else:
        a, b = x[..., 0::2], x[..., 1::2]
    ra = a * phi.cos() - sign * b * phi.sin()
    rb = sign * a * phi.sin() + b * phi.cos()
    if halves:
        return torch.cat([ra, rb], dim=-1)
    out = torch.empty_like(x)
    out[..., 0::2], out[..., 1::2] = ra, rb
    return out


ROPE_MISTAKES = {
    "the pairs turn the wrong way (the sine terms' signs are swapped): (a, b) -> "
    "(a cos - b sin, a sin + b cos)":
        lambda x, p, base: _rope(x, p, base, sign=-1.0),
    "the pairs are (x_i, x_{i + d/2}), the half-split convention: interleaved pairs are "
    "(x_{2i}, x_{2i+1})":
        lambda x, p, base: _rope(x, p, base, halves=True),
    "the angles use i/d instead of 2i/d: theta_i = base^(-2i/d), i counting the pairs":
        lambda x, p, base: _rope(x, p, base, pair_step=1),
    "the positions argument is ignored (0, 1, 2, ... used instead): a cached or shifted sequence "
    "starts elsewhere":
        lambda x, p, base: _rope(x, p, base, own_positions=True),
}


def rope_cases() -> list:
    x = torch.randn(2, 3, 9, 8, generator=torch.Generator().manual_seed(0))
    cases = []
    for pos, base in [(torch.arange(9), 10000.0), (torch.arange(100, 109), 10000.0), (torch.arange(9) * 3, 500.0)]:
        cfg = RoPEConfig(8, base=base, convention="interleaved")
        cases.append(((x, pos, base), apply_rope(x, *rope_cos_sin(pos, cfg), "interleaved")))
    return cases


def check_rope_interleaved(fn) -> None:
    """Exercise 03.3: ``fn(x, positions, base)`` rotates each interleaved pair by its angle."""
    check_function(fn, rope_cases(), name="my_rope_interleaved", mistakes=ROPE_MISTAKES,
                   forbid=[apply_rope, rope_cos_sin])


# ---- exercise 03.4: the NTK-aware base ------------------------------------------------------------

NTK_MISTAKES = {
    "the exponent is upside down: b' = b · s^(d/(d-2)), not b · s^((d-2)/d)":
        lambda b, d, s: b * s ** ((d - 2) / d),
    "the base is multiplied by s alone: that slows the slowest pair by s^((d-2)/d), not s":
        lambda b, d, s: b * s,
    "the base is divided by the factor: a larger base turns the pairs SLOWER, which is what "
    "a longer context needs":
        lambda b, d, s: b / s ** (d / (d - 2)),
    "the old base is missing: b' = b · s^(d/(d-2))":
        lambda b, d, s: s ** (d / (d - 2)),
}


def check_ntk_base(fn) -> None:
    """Exercise 03.4: ``fn(base, dim, factor)`` is the base whose slowest pair turns ``factor`` times slower."""
    cases = [((b, d, s), ntk_scaled_base(b, d, s)) for b, d, s in
             ((10000.0, 64, 8.0), (10000.0, 128, 4.0), (500000.0, 16, 2.0))]
    check_function(fn, cases, name="ntk_base", rtol=1e-9, mistakes=NTK_MISTAKES, forbid=[ntk_scaled_base])


# ---- exercise 03.5: predict, then measure: how far ALiBi looks ------------------------------------


@torch.no_grad()
def measure_alibi_far_share(n_heads: int = 4, length: int = 256, window: int = 64) -> torch.Tensor:
    """Share of the last query's attention, per head, on keys ``window`` or more positions back,
    when every query-key score before the bias is the same (q = k = 0): measured by running causal
    attention with ALiBi's bias (the chapter's PosLM calls the same function with the same bias),
    with a value of 1 at those far keys and 0 elsewhere. Shape ``(n_heads,)``."""
    if not 0 < window < length:
        raise ValueError(f"window: expected 0 < window < length={length}, got {window}")
    q = k = torch.zeros(1, n_heads, length, 8)
    far = (torch.arange(length) <= length - 1 - window).float()  # keys at distance >= window from the last query
    v = far.view(1, 1, length, 1).expand(1, n_heads, length, 1)
    out = scaled_dot_product_attention(q, k, v, attn_mask=alibi_bias(n_heads, length), is_causal=True)
    return out[0, :, -1, 0]


#: ``description -> predicate(prediction)``: a prediction (one share per head) that makes the mistake.
ALIBI_FAR_MISTAKES = {
    "a share lies between 0 and 1: these are fractions of the attention, not percentages":
        lambda p: bool((p > 1).any()),
    "ALiBi's penalty is finite: it lowers the scores of far keys but does not cut them off, and a head "
    "with a gentle slope still puts much of its weight far back":
        lambda p: bool((p < 0.01).all()),
    "with no bias every key would get the same weight (192 of 256 keys lie 64 or more back, 0.75); "
    "ALiBi subtracts slope x distance from each score":
        lambda p: bool(((p - 0.75).abs() < 0.02).all()),
    "the slopes run the other way: head 1 has the steepest slope, 2^-2, and looks nearest; the last "
    "head has the gentlest, 2^-8":
        lambda p: bool(p[0] > p[-1] + 0.02),
}


def check_alibi_far_share(prediction) -> None:
    """Exercise 03.5: ``prediction`` holds one share per head of the chapter's 4-head ALiBi model
    (the share of the attention of the query at position 255 on keys 64 or more positions back,
    with equal raw scores), compared with :func:`measure_alibi_far_share` within 0.02."""
    try:
        p = torch.as_tensor(prediction, dtype=torch.float64).flatten()
    except (TypeError, ValueError) as err:
        raise ExerciseError(f"the prediction should be 4 numbers, one share per head, got {prediction!r}") from err
    if p.numel() != 4 or not torch.isfinite(p).all() or (p < 0).any():
        raise ExerciseError(f"the prediction should be 4 shares >= 0, one per head, got {prediction!r}")
    measured = measure_alibi_far_share(4, 256, 64).double()
    for words, makes_it in ALIBI_FAR_MISTAKES.items():
        if makes_it(p):
            raise ExerciseError(f"likely mistake: {words}. Your prediction: {[round(x, 3) for x in p.tolist()]}; "
                                f"measured: {[round(x, 3) for x in measured.tolist()]}")
    for h in range(4):
        check_close(float(p[h]), float(measured[h]), name=f"share of head {h + 1} (slope "
                    f"{alibi_slopes(4)[h].item():g}) 64 or more back", atol=0.02, rtol=0)
    _ok("measured with the attention itself: " + ", ".join(f"head {h + 1} {x:.3f}" for h, x in enumerate(measured.tolist())))
