"""roadmap_lib.quantization.rtn: round-to-nearest integer quantisation and int4 packing.

Properties (hypothesis): every scheme, granularity and bit width dequantises to within half a step
of every weight, codes stay in their range, and packing round-trips and really halves storage.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.quantization.rtn import (
    code_range,
    dequantize,
    fake_quantize,
    pack_int4,
    qparams,
    quantize,
    quantize_with,
    unpack_int4,
)


def weight(rows, cols, seed, scale=1.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, cols, generator=g, dtype=torch.float64) * scale).to(dtype)


def step_per_element(scales: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The grid step of every weight: the scale of its group, broadcast to (rows, cols)."""
    rows, cols = shape
    return scales.repeat_interleave(cols // scales.shape[1], dim=1).expand(rows, cols)


# ----------------------------------------------------------------- half a step, per scheme


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(2, 8), scheme=st.sampled_from(["absmax", "zeropoint"]),
       gran=st.sampled_from(["tensor", "channel", 4, 8]), rows=st.integers(1, 6), groups=st.integers(1, 4),
       seed=st.integers(0, 10_000), scale=st.sampled_from([1e-3, 1.0, 50.0]),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_error_is_at_most_half_a_step(bits, scheme, gran, rows, groups, seed, scale, dtype):
    cols = 8 * groups
    w = weight(rows, cols, seed, scale, dtype)
    if seed % 3 == 0:
        w = w.abs()  # all positive: the zero-point range is widened to include 0
    q = quantize(w, bits, scheme, gran)
    lo, hi = code_range(bits, scheme)
    assert q.codes.shape == w.shape and q.codes.dtype == (torch.int8 if scheme == "absmax" else torch.uint8)
    assert int(q.codes.min()) >= lo and int(q.codes.max()) <= hi
    expected_groups = {"tensor": (1, 1), "channel": (rows, 1)}.get(gran) or (rows, cols // gran)
    assert tuple(q.scales.shape) == expected_groups
    assert (q.zeros is None) == (scheme == "absmax")
    w_hat = dequantize(*q)
    assert w_hat.dtype == dtype
    step = step_per_element(q.scales, tuple(w.shape))
    tol = torch.finfo(dtype).eps * 8 * (w.abs() + step)
    assert bool(((w - w_hat).abs() <= step / 2 + tol).all())
    assert torch.equal(fake_quantize(w, bits, scheme, gran), w_hat)


def test_absmax_hits_the_extremes_and_zero_point_represents_zero():
    w = torch.tensor([[-2.0, -1.0, 0.0, 0.5, 1.0, 2.0]])
    q = quantize(w, 3, "absmax", "channel")  # 3 bits: codes -3..3, step 2/3
    assert q.codes.tolist() == [[-3, -2, 0, 1, 2, 3]] and q.scales.item() == pytest.approx(2 / 3)
    w = torch.tensor([[0.5, 1.0, 3.5]])  # all positive: range [0, 3.5], zero point 0
    q = quantize(w, 4, "zeropoint", "channel")
    assert q.zeros.item() == 0 and dequantize(*q)[0, 0].item() == pytest.approx(0.4666667, abs=1e-6)
    w = torch.tensor([[-1.0, 0.0, 2.0]])
    q = quantize(w, 2, "zeropoint", "channel")  # step 1, zero point 1: exact
    assert torch.equal(dequantize(*q), w) and q.zeros.item() == 1


def test_group_wise_beats_channel_beats_tensor_on_varied_rows():
    w = weight(16, 128, 0) * torch.logspace(-2, 0, 16).unsqueeze(1)  # rows of very different sizes
    w[:, :32] *= 5  # and columns too
    errs = [(w - fake_quantize(w, 4, "absmax", g)).pow(2).sum().item() for g in ("tensor", "channel", 32)]
    assert errs[0] > 2 * errs[1] > 0 and errs[1] > 1.5 * errs[2] > 0


def test_all_zero_groups_and_quantize_with_a_given_grid():
    w = torch.zeros(3, 8)
    w[1] = torch.arange(8.0)
    for scheme in ("absmax", "zeropoint"):
        q = quantize(w, 4, scheme, 4)
        assert torch.equal(dequantize(*q)[0], torch.zeros(8)) and torch.isfinite(q.scales).all()
    scales, zeros = qparams(w, 8, "zeropoint", "channel")
    assert torch.equal(quantize_with(w, scales, zeros, 8), quantize(w, 8, "zeropoint", "channel").codes)


# -------------------------------------------------------------------------------- packing


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 5), half=st.integers(1, 20), signed=st.booleans(), seed=st.integers(0, 1000))
def test_pack_unpack_round_trip(rows, half, signed, seed):
    g = torch.Generator().manual_seed(seed)
    lo, hi = (-8, 7) if signed else (0, 15)
    codes = torch.randint(lo, hi + 1, (rows, 2 * half), generator=g).to(torch.int8 if signed else torch.uint8)
    packed = pack_int4(codes)
    assert packed.dtype == torch.uint8 and packed.shape == (rows, half)
    assert torch.equal(unpack_int4(packed, signed=signed), codes)


def test_packing_layout_and_storage():
    packed = pack_int4(torch.tensor([1, 2, 15, 0], dtype=torch.uint8))
    assert packed.tolist() == [0x12, 0xF0]  # first code in the high nibble
    assert pack_int4(torch.tensor([-1, -8], dtype=torch.int8)).tolist() == [0xF8]
    w = weight(256, 512, 1)
    codes = quantize(w, 4, "absmax", 64).codes
    packed = pack_int4(codes)
    # half a byte per weight, measured on the storage itself (not numel * element_size)
    assert codes.untyped_storage().nbytes() == 256 * 512
    assert packed.untyped_storage().nbytes() == 256 * 512 // 2
    assert w.untyped_storage().nbytes() == 256 * 512 * 4


# ------------------------------------------------------------------------------- refusals


def refuses(call, error, words):
    """``call()`` raises ``error`` whose message contains every one of ``words`` (the argument's
    name, what it got, what was expected). Shared by the other test_quantization_* files."""
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("call, error, words", [
    (lambda: quantize(torch.randn(4, 8), 1), ValueError, ["bits", "2 to 8", "1"]),
    (lambda: quantize(torch.randn(4, 8), 9), ValueError, ["bits", "9"]),
    (lambda: quantize(torch.randn(4, 8), 4.0), ValueError, ["bits", "4.0"]),
    (lambda: quantize(torch.randn(4, 8), 4, granularity=3), ValueError, ["granularity", "3", "in_features=8"]),
    (lambda: quantize(torch.randn(4, 8), 4, granularity="row"), ValueError, ["granularity", "'row'"]),
    (lambda: quantize(torch.randn(4, 8), 4, scheme="minmax"), ValueError, ["scheme", "'minmax'"]),
    (lambda: quantize(torch.randn(8), 4), ValueError, ["w", "2-D", "(8,)"]),
    (lambda: quantize(torch.randn(2, 4, 8), 4), ValueError, ["w", "2-D", "(2, 4, 8)"]),
    (lambda: quantize(torch.ones(4, 8, dtype=torch.int32), 4), TypeError, ["w", "floating", "torch.int32"]),
    (lambda: quantize([[1.0]], 4), TypeError, ["w", "torch.Tensor", "list"]),
    (lambda: dequantize(torch.zeros(4, 8), torch.ones(4, 1)), TypeError, ["codes", "int8", "torch.float32"]),
    (lambda: dequantize(torch.zeros(4, 8, dtype=torch.int8), torch.ones(4, 3)), ValueError, ["scales", "(4, 3)"]),
    (lambda: pack_int4(torch.zeros(3, dtype=torch.uint8)), ValueError, ["codes", "even", "(3,)"]),
    (lambda: pack_int4(torch.tensor([16, 0], dtype=torch.uint8)), ValueError, ["codes", "[0, 15]", "16"]),
    (lambda: pack_int4(torch.tensor([-9, 0], dtype=torch.int8)), ValueError, ["codes", "[-8, 7]", "-9"]),
    (lambda: pack_int4(torch.zeros(2)), TypeError, ["codes", "uint8", "torch.float32"]),
    (lambda: unpack_int4(torch.zeros(2, dtype=torch.int8)), TypeError, ["packed", "uint8", "torch.int8"]),
])
def test_refusals_name_the_argument(call, error, words):
    refuses(call, error, words)
