"""Round-to-nearest (RTN) integer quantisation of weight matrices, and int4 packing.

A weight ``w`` of shape (out_features, in_features) is cut into groups of consecutive input
columns; every group gets its own scale ``s`` (and, for the asymmetric scheme, a zero point ``z``),
and every weight becomes a ``b``-bit integer code ``q``:

    absmax (symmetric):   s = max|w| / (2^(b-1) - 1),        q = round(w / s)
    zero-point (asymm.):  s = (max w - min w) / (2^b - 1),   z = round(-min w / s),
                          q = clamp(round(w / s) + z, 0, 2^b - 1)
    dequantise:           ŵ = s · q   or   ŵ = s · (q - z)

(absmax codes lie in [-(2^(b-1)-1), 2^(b-1)-1], symmetric around 0; zero-point codes in [0, 2^b-1]).

The zero-point range always contains 0, so that 0 is exactly representable (z is itself a code).
Rounding to the nearest grid point means |w - ŵ| ≤ s/2 for every weight: half a step.

The granularity says which weights share a scale: ``"tensor"`` (one scale), ``"channel"`` (one per
output row) or an int ``g`` (groups of ``g`` input columns per row; ``g`` must divide the row).
Scales have shape (1, 1), (out, 1) or (out, in // g); codes have the shape of ``w``.

Four-bit codes are stored two to a byte by :func:`pack_int4`: the even element in the high nibble,
the odd one in the low nibble (the layout bitsandbytes uses for NF4).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

SCHEMES = ("absmax", "zeropoint")
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# --------------------------------------------------------------------------------------- checks


def check_weight(w: object, name: str = "w") -> torch.Tensor:
    """``w`` must be a 2-D floating-point tensor (out_features, in_features)."""
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(w).__name__}")
    if w.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected a floating-point tensor "
                        f"({', '.join(map(str, FLOAT_DTYPES))}), got {w.dtype}")
    if w.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D weight (out_features, in_features), "
                         f"got shape {tuple(w.shape)}")
    return w


def check_positive_int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def check_bits(bits: object, low: int = 2, high: int = 8) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or not low <= bits <= high:
        raise ValueError(f"bits: expected an int from {low} to {high}, got {bits!r}")
    return bits


def check_scheme(scheme: object) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: expected one of {SCHEMES}, got {scheme!r}")
    return scheme  # type: ignore[return-value]


def n_groups(granularity: object, shape: tuple[int, int]) -> tuple[int, int]:
    """``(rows, groups)`` of the scale tensor for ``granularity`` on a weight of ``shape``."""
    rows, cols = shape
    if granularity == "tensor":
        return 1, 1
    if granularity == "channel":
        return rows, 1
    if isinstance(granularity, int) and not isinstance(granularity, bool) and granularity >= 1:
        if cols % granularity:
            raise ValueError(f"granularity: group size {granularity} does not divide the row length "
                             f"in_features={cols}; expected a divisor of {cols}")
        return rows, cols // granularity
    raise ValueError("granularity: expected 'tensor', 'channel' or a positive int group size, "
                     f"got {granularity!r}")


def code_range(bits: int, scheme: str) -> tuple[int, int]:
    """Smallest and largest code: [-(2^(b-1)-1), 2^(b-1)-1] for absmax, [0, 2^b-1] for zero-point."""
    if scheme == "absmax":
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _grouped(t: torch.Tensor, groups: int) -> torch.Tensor:
    """(rows, cols) -> (rows, groups, cols // groups); a per-tensor view has one row and one group."""
    return t.reshape(t.shape[0], groups, t.shape[1] // groups)


# ------------------------------------------------------------------------------ quantisation


class Quantized(NamedTuple):
    codes: torch.Tensor  # (out, in): int8 (absmax) or uint8 (zero-point)
    scales: torch.Tensor  # (1, 1), (out, 1) or (out, in // g), the weight's dtype
    zeros: torch.Tensor | None  # like scales, uint8 codes; None for absmax


def qparams(w: torch.Tensor, bits: int = 8, scheme: str = "absmax",
            granularity: str | int = "channel") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scales (and zero points) for ``w`` (out, in): shapes as in the module docstring."""
    check_weight(w)
    check_bits(bits)
    check_scheme(scheme)
    rows, groups = n_groups(granularity, tuple(w.shape))
    g = w.detach().reshape(rows, groups, -1)  # "tensor": (1, 1, numel)
    lo, hi = code_range(bits, scheme)
    if scheme == "absmax":
        return _nonzero(g.abs().amax(-1) / hi), None
    wmin, wmax = g.amin(-1).clamp(max=0), g.amax(-1).clamp(min=0)  # the range includes 0
    scale = _nonzero((wmax - wmin) / hi)
    return scale, torch.round(-wmin / scale).clamp(lo, hi).to(torch.uint8)


def _nonzero(scale: torch.Tensor) -> torch.Tensor:
    """An all-zero group has scale 0; any scale represents it exactly, so use 1 (no 0/0)."""
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def _check_scales(scales: torch.Tensor, shape: tuple[int, ...]) -> int:
    """Scales for a (rows, cols) weight are (1 or rows, groups), groups dividing cols."""
    rows, cols = shape
    if scales.ndim != 2 or cols % scales.shape[1] or scales.shape[0] not in (1, rows):
        raise ValueError(f"scales: expected shape (1 or {rows}, a divisor of {cols}), "
                         f"got {tuple(scales.shape)}")
    return scales.shape[1]


def quantize_with(w: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
                  bits: int) -> torch.Tensor:
    """Codes of ``w`` (out, in) on a given grid (``scales``/``zeros`` of shape (1|out, groups))."""
    check_weight(w)
    check_bits(bits)
    groups = _check_scales(scales, tuple(w.shape))
    lo, hi = code_range(bits, "absmax" if zeros is None else "zeropoint")
    q = torch.round(_grouped(w, groups) / scales.unsqueeze(-1).to(w.dtype))
    if zeros is None:
        return q.clamp(lo, hi).to(torch.int8).reshape(w.shape)
    return (q + zeros.unsqueeze(-1).to(w.dtype)).clamp(lo, hi).to(torch.uint8).reshape(w.shape)


def quantize(w: torch.Tensor, bits: int = 8, scheme: str = "absmax",
             granularity: str | int = "channel") -> Quantized:
    """``w`` (out, in) -> :class:`Quantized` (codes, scales, zeros) by round-to-nearest.

    ``scheme``: ``"absmax"`` (symmetric, no zero point) or ``"zeropoint"`` (asymmetric).
    ``granularity``: ``"tensor"``, ``"channel"`` (per output row) or an int group size along the
    input dimension.
    """
    scales, zeros = qparams(w, bits, scheme, granularity)
    return Quantized(quantize_with(w.detach(), scales, zeros, bits), scales, zeros)


def dequantize(codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None = None,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """ŵ = s · (q - z) in ``dtype`` (default: the scales'); shapes as :func:`quantize` gives."""
    if (not isinstance(codes, torch.Tensor) or codes.dtype not in (torch.int8, torch.uint8)
            or codes.ndim != 2):
        got = (f"{codes.dtype}, shape {tuple(codes.shape)}" if isinstance(codes, torch.Tensor)
               else type(codes).__name__)
        raise TypeError(f"codes: expected a 2-D int8 or uint8 tensor, got {got}")
    groups = _check_scales(scales, tuple(codes.shape))
    dtype = dtype or scales.dtype
    q = _grouped(codes.to(dtype), groups)
    if zeros is not None:
        q = q - zeros.unsqueeze(-1).to(dtype)
    return (q * scales.unsqueeze(-1).to(dtype)).reshape(codes.shape)


def fake_quantize(w: torch.Tensor, bits: int = 8, scheme: str = "absmax",
                  granularity: str | int = "channel") -> torch.Tensor:
    """``dequantize(quantize(w))``: the weight the quantised layer really uses, in ``w``'s dtype."""
    return dequantize(*quantize(w, bits, scheme, granularity), dtype=w.dtype)


# ----------------------------------------------------------------------------------- packing


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """(..., n) 4-bit codes -> (..., n // 2) uint8, element 2i in the high nibble, 2i+1 in the low.

    ``codes``: uint8 in [0, 15] or int8 in [-8, 7] (stored as two's complement nibbles); ``n`` even.
    """
    if not isinstance(codes, torch.Tensor) or codes.dtype not in (torch.int8, torch.uint8):
        got = codes.dtype if isinstance(codes, torch.Tensor) else type(codes).__name__
        raise TypeError(f"codes: expected an int8 or uint8 tensor, got {got}")
    if codes.ndim == 0 or codes.shape[-1] % 2:
        raise ValueError("codes: expected an even last dimension (two codes per byte), "
                         f"got shape {tuple(codes.shape)}")
    lo, hi = (-8, 7) if codes.dtype == torch.int8 else (0, 15)
    if codes.numel() and (codes.min() < lo or codes.max() > hi):
        raise ValueError(f"codes: expected {codes.dtype} values in [{lo}, {hi}], "
                         f"got values in [{codes.min().item()}, {codes.max().item()}]")
    nibbles = codes.to(torch.int16) & 0xF
    return ((nibbles[..., 0::2] << 4) | nibbles[..., 1::2]).to(torch.uint8)


def unpack_int4(packed: torch.Tensor, signed: bool = False) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: (..., m) uint8 -> (..., 2m) uint8 codes (int8 if ``signed``)."""
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8 or packed.ndim == 0:
        got = packed.dtype if isinstance(packed, torch.Tensor) else type(packed).__name__
        raise TypeError(f"packed: expected a uint8 tensor of packed nibbles, got {got}")
    p = packed.to(torch.int16)
    nibbles = torch.stack([p >> 4, p & 0xF], dim=-1).flatten(-2)
    if signed:
        return torch.where(nibbles >= 8, nibbles - 16, nibbles).to(torch.int8)
    return nibbles.to(torch.uint8)


__all__ = ["FLOAT_DTYPES", "SCHEMES", "Quantized", "check_bits", "check_positive_int",
           "check_scheme", "check_weight", "code_range", "dequantize", "fake_quantize", "n_groups",
           "pack_int4", "qparams", "quantize", "quantize_with", "unpack_int4"]
