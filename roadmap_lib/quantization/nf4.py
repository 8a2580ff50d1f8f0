"""NF4 with double quantisation, the storage format of QLoRA (Dettmers et al. 2023).

**NormalFloat-4** is a code book of 16 values, not an integer grid: pretrained weights are roughly
normal, so the codes sit at quantiles of N(0, 1), each bin holding about the same probability mass.
To have an exact zero and use all 16 codes, the paper takes 8 quantiles for the positive half and 7
for the negative half and joins them at 0 (one more positive value than negative ones), then
normalises to [-1, 1]. A weight is stored as the index of the code nearest to w / absmax, where
absmax is the largest |w| of its **block** of 64 consecutive weights (the weight read row by row).

**Double quantisation** then shrinks the 32-bit absmax constants themselves: their mean is
subtracted, and the centred constants are quantised to 8 bits in blocks of 256, with the signed
8-bit *dynamic* code book of bitsandbytes (a float-like code: a sign, a decade 10^-6 ... 10^0, and
more linear fraction steps for larger decades). Storage per weight: 4 bits of code + 8/64 bits of
quantised absmax + 32/(64·256) bits of second-level scale ≈ 4.127 bits, against 4.5 without it.

Bit for bit the same as ``bitsandbytes.functional.quantize_4bit(w, blocksize=64,
compress_statistics=True, quant_type="nf4")`` and its ``dequantize_4bit`` on CPU (code book, packed
codes, quantised absmax, dequantised weights): ``tests/test_quantization_nf4.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from roadmap_lib.quantization.rtn import check_weight, pack_int4, unpack_int4

#: The outermost quantile: ½(1 - 1/30) + ½(1 - 1/32) = 0.96770833..., the mean of the centres of
#: the last bin of a 15- and of a 16-bin split, rounded to 7 decimals as in the paper's code
#: (bitsandbytes' ``create_normal_map``). The unrounded value moves the table by up to 3e-7.
NF4_OFFSET = 0.9677083


def nf4_code_book() -> torch.Tensor:
    """The 16 NF4 values, ascending, float32: code 0 is -1, code 7 is exactly 0, code 15 is 1."""
    positive = torch.linspace(NF4_OFFSET, 0.5, 9).double()[:-1]  # 8 quantiles above the median
    negative = torch.linspace(NF4_OFFSET, 0.5, 8).double()[:-1]  # 7 below it
    zero = torch.zeros(1, dtype=torch.float64)
    values = torch.cat([torch.special.ndtri(positive), -torch.special.ndtri(negative), zero])
    values = values.float().sort().values
    return values / values.max()


def dynamic_code_book() -> torch.Tensor:
    """bitsandbytes' signed 8-bit dynamic code (256 values, ascending, float32).

    The decade 10^(i-6), i = 0..6, gets 2^i linearly spaced fractions in (0.1, 1) (the midpoints of
    2^i equal bins), with both signs: 2·127 values, plus 0 and 1.
    """
    values = [torch.tensor([0.0, 1.0])]
    for i in range(7):
        edges = torch.linspace(0.1, 1.0, 2**i + 1)
        mids = (10.0 ** (i - 6)) * ((edges[:-1] + edges[1:]) / 2)
        values += [mids, -mids]
    return torch.cat(values).sort().values


def nearest_code(x: torch.Tensor, code_book: torch.Tensor) -> torch.Tensor:
    """Index (uint8) of the nearest value of the ascending ``code_book`` for every element of ``x``.

    A value is compared with the midpoints between neighbouring codes; one exactly on a midpoint
    goes to the lower code.
    """
    midpoints = (code_book[:-1] + code_book[1:]) / 2
    return torch.bucketize(x, midpoints).to(torch.uint8)


def _blocks(flat: torch.Tensor, size: int) -> torch.Tensor:
    """(n,) -> (ceil(n / size), size), the last block padded with zeros (which change no absmax)."""
    pad = -flat.numel() % size
    return torch.nn.functional.pad(flat, (0, pad)).reshape(-1, size)


@dataclass
class NF4Weight:
    """An NF4 weight: packed codes and (double-quantised) block absmax, everything a forward needs."""

    packed: torch.Tensor  # (n_blocks · block_size / 2,) uint8, two codes per byte
    absmax: torch.Tensor  # (n_blocks,) uint8 codes (double quantised) or float32
    absmax_scales: torch.Tensor | None  # (ceil(n_blocks / scale_block_size),) float32
    absmax_offset: torch.Tensor | None  # () float32, the mean subtracted before the second level
    shape: tuple[int, ...]
    block_size: int = 64
    scale_block_size: int = 256

    def tensors(self) -> list[torch.Tensor]:
        parts = (self.packed, self.absmax, self.absmax_scales, self.absmax_offset)
        return [t for t in parts if t is not None]

    @property
    def nbytes(self) -> int:
        """Bytes of storage: packed codes, absmax codes, second-level scales and the offset."""
        return sum(t.untyped_storage().nbytes() for t in self.tensors())


def _check_block(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 2 or value % 2:
        raise ValueError(f"{name}: expected an even int >= 2, got {value!r}")
    return value


def quantize_nf4(w: torch.Tensor, block_size: int = 64, scale_block_size: int = 256,
                 double_quant: bool = True) -> NF4Weight:
    """``w`` (out, in) -> :class:`NF4Weight`: NF4 codes per ``block_size`` weights (read row by row),
    their absmax constants double-quantised to 8 bits per ``scale_block_size`` (or kept in float32
    with ``double_quant=False``). Computed in float32, whatever ``w``'s dtype."""
    check_weight(w)
    _check_block(block_size, "block_size")
    _check_block(scale_block_size, "scale_block_size")
    blocks = _blocks(w.detach().reshape(-1).float(), block_size)
    absmax = blocks.abs().amax(dim=1)
    # normalise to [-1, 1] multiplying by the reciprocal, the arithmetic of bitsandbytes
    normed = (blocks * (1.0 / absmax.clamp(min=1e-38)).unsqueeze(1)).clamp(-1, 1)
    codes = nearest_code(normed.reshape(-1), nf4_code_book())
    packed = pack_int4(codes)
    if not double_quant:
        return NF4Weight(packed, absmax, None, None, tuple(w.shape), block_size, scale_block_size)
    offset = absmax.mean()
    centred = _blocks(absmax - offset, scale_block_size)
    scales = centred.abs().amax(dim=1)
    normed = centred * (1.0 / torch.where(scales > 0, scales, torch.ones_like(scales))).unsqueeze(1)
    absmax_codes = nearest_code(normed.reshape(-1)[: absmax.numel()], dynamic_code_book())
    return NF4Weight(packed, absmax_codes, scales, offset, tuple(w.shape), block_size, scale_block_size)


def nf4_absmax(q: NF4Weight) -> torch.Tensor:
    """The block absmax constants (n_blocks,) float32, undoing the double quantisation if any."""
    if q.absmax_scales is None:
        return q.absmax
    values = _blocks(dynamic_code_book()[q.absmax.long()], q.scale_block_size)
    values = values * q.absmax_scales.unsqueeze(1)
    return values.reshape(-1)[: q.absmax.numel()] + q.absmax_offset


def dequantize_nf4(q: NF4Weight, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The weight (shape ``q.shape``) back from its NF4 form: code book value × block absmax."""
    if not isinstance(q, NF4Weight):
        raise TypeError(f"q: expected an NF4Weight, got {type(q).__name__}")
    values = nf4_code_book()[unpack_int4(q.packed).long()].reshape(-1, q.block_size)
    w = (values * nf4_absmax(q).unsqueeze(1)).reshape(-1)
    return w[: math.prod(q.shape)].reshape(q.shape).to(dtype)


__all__ = [
    "NF4_OFFSET",
    "NF4Weight",
    "dequantize_nf4",
    "dynamic_code_book",
    "nearest_code",
    "nf4_absmax",
    "nf4_code_book",
    "quantize_nf4",
]
