"""Quantised linear layers, and quantising a whole model.

:class:`QuantizedLinear` stores its weight in a quantised form and dequantises it on the fly in
``forward`` (the weight-only quantisation of GPTQ, AWQ and QLoRA inference):

* ``"int"``: integer codes with scales (and zero points) from RTN, GPTQ or AWQ; 4-bit and smaller
  codes are packed two to a byte; AWQ layers also keep the input scale 1/s;
* ``"nf4"``: NF4 codes, packed, with double-quantised block absmax.

An 8-bit absmax per-channel layer can instead run PyTorch's own weight-only int8 kernel
(``torch._weight_int8pack_mm``: int8 weight, float activations, per-channel scales) with
``int8_kernel = True``. It is off by default: on the CPU this module was written on, that kernel
was far slower in float32 than dequantising and calling the float matmul.

:func:`quantize_model` replaces the ``nn.Linear`` layers of any of our models (GPT, Llama, BERT,
T5, ...) by name; :func:`model_nbytes` counts the bytes a model really stores.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.nn import functional as F

from roadmap_lib.quantization.awq import awq_search
from roadmap_lib.quantization.gptq import gptq_hessian, gptq_quantize
from roadmap_lib.quantization.nf4 import NF4Weight, dequantize_nf4, quantize_nf4
from roadmap_lib.quantization.rtn import (
    Quantized,
    check_bits,
    check_positive_int,
    check_scheme,
    dequantize,
    pack_int4,
    quantize,
    unpack_int4,
)

METHODS = ("rtn", "gptq", "awq", "nf4")


class QuantizedLinear(nn.Module):
    """y = x Ŵᵀ + b, Ŵ dequantised from the stored codes on every call. Build one with
    :meth:`from_quantized`, :meth:`from_nf4` or :meth:`from_linear`; everything is a buffer, so
    ``state_dict()`` holds the quantised form."""

    def __init__(self, in_features: int, out_features: int, fmt: str, bits: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.fmt, self.bits, self.packed = fmt, bits, False
        self.block_size, self.scale_block_size = 64, 256  # NF4's blocks
        self.int8_kernel = False
        self.register_buffer("bias", None)
        self.register_buffer("input_scale", None)

    # ------------------------------------------------------------------------ constructors

    @classmethod
    def from_quantized(cls, q: Quantized, bits: int, bias: torch.Tensor | None = None,
                       input_scale: torch.Tensor | None = None) -> QuantizedLinear:
        """Integer codes (RTN/GPTQ/AWQ); ``input_scale`` (in,) multiplies x first (AWQ's 1/s)."""
        check_bits(bits)
        if not isinstance(q, Quantized):
            raise TypeError(f"q: expected a Quantized (codes, scales, zeros), got {type(q).__name__}")
        out_features, in_features = q.codes.shape
        m = cls(in_features, out_features, "int", bits)
        packed = bits <= 4 and in_features % 2 == 0
        m.register_buffer("codes", pack_int4(q.codes) if packed else q.codes.clone())
        m.packed = packed
        m.register_buffer("scales", q.scales.clone())
        m.register_buffer("zeros", None if q.zeros is None else q.zeros.clone())
        m._set_common(bias, input_scale)
        return m

    @classmethod
    def from_nf4(cls, q: NF4Weight, bias: torch.Tensor | None = None) -> QuantizedLinear:
        if not isinstance(q, NF4Weight):
            raise TypeError(f"q: expected an NF4Weight, got {type(q).__name__}")
        out_features, in_features = q.shape
        m = cls(in_features, out_features, "nf4", 4)
        m.block_size, m.scale_block_size, m.packed = q.block_size, q.scale_block_size, True
        m.register_buffer("codes", q.packed.clone())
        m.register_buffer("absmax", q.absmax.clone())
        for name in ("absmax_scales", "absmax_offset"):
            t = getattr(q, name)
            m.register_buffer(name, None if t is None else t.clone())
        m._set_common(bias, None)
        return m

    @classmethod
    def from_linear(cls, linear: nn.Linear, method: str = "rtn", bits: int = 8,
                    scheme: str = "absmax", granularity: str | int = "channel",
                    block_size: int = 64) -> QuantizedLinear:
        """Round-to-nearest (``method="rtn"``: ``bits``, ``scheme``, ``granularity``) or NF4
        (``"nf4"``: ``block_size``) of an ``nn.Linear``. GPTQ and AWQ need the layer's inputs:
        :func:`quantize_model`."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear: expected an nn.Linear, got {type(linear).__name__}")
        bias = None if linear.bias is None else linear.bias.detach()
        if method == "rtn":
            return cls.from_quantized(quantize(linear.weight, bits, scheme, granularity), bits, bias)
        if method == "nf4":
            return cls.from_nf4(quantize_nf4(linear.weight, block_size=block_size), bias)
        raise ValueError(f"method: expected 'rtn' or 'nf4' (GPTQ/AWQ: quantize_model), got {method!r}")

    def _set_common(self, bias: torch.Tensor | None, input_scale: torch.Tensor | None) -> None:
        expected = {"bias": self.out_features, "input_scale": self.in_features}
        for name, t in (("bias", bias), ("input_scale", input_scale)):
            n = expected[name]
            if t is not None and tuple(t.shape) != (n,):
                raise ValueError(f"{name}: expected shape ({n},), got {tuple(t.shape)}")
            self.register_buffer(name, None if t is None else t.detach().clone())

    # ----------------------------------------------------------------------------- forward

    def dequantized_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Ŵ (out, in) in ``dtype`` (default: the scales' dtype, float32 for NF4)."""
        if self.fmt == "nf4":
            q = NF4Weight(self.codes, self.absmax, self.absmax_scales, self.absmax_offset,
                          (self.out_features, self.in_features), self.block_size,
                          self.scale_block_size)
            return dequantize_nf4(q, dtype or torch.float32)
        codes = unpack_int4(self.codes, signed=self.zeros is None) if self.packed else self.codes
        return dequantize(codes, self.scales, self.zeros, dtype)

    @property
    def int8_kernel_applies(self) -> bool:
        """8-bit absmax codes with one scale per output row: what PyTorch's int8 kernel takes."""
        return (self.fmt == "int" and self.bits == 8 and self.zeros is None
                and self.scales.shape == (self.out_features, 1)
                and hasattr(torch, "_weight_int8pack_mm"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected a last dimension of {self.in_features}, "
                             f"got shape {tuple(x.shape)}")
        if self.input_scale is not None:
            x = x * self.input_scale.to(x.dtype)
        if (self.int8_kernel and self.int8_kernel_applies and x.device.type == "cpu"
                and x.dtype in (torch.float32, torch.bfloat16, torch.float16)):
            y = torch._weight_int8pack_mm(x.reshape(-1, self.in_features).contiguous(), self.codes,
                                          self.scales.reshape(-1).to(x.dtype))
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantized_weight(x.dtype), bias)

    @property
    def nbytes(self) -> int:
        """Bytes of every stored tensor: codes, scales, zero points, absmax, bias, input scale."""
        return sum(b.untyped_storage().nbytes() for b in self.buffers())

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"fmt={self.fmt!r}, bits={self.bits}, packed={self.packed}, "
                f"bias={self.bias is not None}")


# ------------------------------------------------------------------------- whole models


def model_nbytes(model: nn.Module) -> int:
    """Bytes of the distinct tensors a model stores (parameters and buffers; a tied weight once)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    seen: dict[int, int] = {}
    for t in [*model.parameters(), *model.buffers()]:
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


def _targets(model: nn.Module, include: str | None, exclude: str | None) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)
            and (include is None or re.search(include, name))
            and not (exclude and re.search(exclude, name))]


def _run(model: nn.Module, calibration) -> None:
    if isinstance(calibration, dict):
        model(**calibration)
    elif isinstance(calibration, (tuple, list)):
        model(*calibration)
    else:
        model(calibration)


def _inputs_of(model: nn.Module, layer: nn.Module, calibration) -> torch.Tensor:
    """Every input the layer sees in one forward pass on ``calibration``, as (tokens, in)."""
    seen: list[torch.Tensor] = []

    def record(_module, args, _output):
        seen.append(args[0].detach().reshape(-1, args[0].shape[-1]))

    handle = layer.register_forward_hook(record)
    try:
        with torch.no_grad():
            _run(model, calibration)
    finally:
        handle.remove()
    if not seen:
        raise ValueError(f"calibration: the forward pass never reached layer {layer!r}")
    return torch.cat(seen)


def quantize_model(model: nn.Module, method: str = "rtn", bits: int | None = None,
                   group_size: int | None = None, calibration=None, *, scheme: str = "absmax",
                   include: str | None = None, exclude: str | None = "lm_head",
                   block_size: int = 128, damp: float = 0.01, n_grid: int = 20,
                   int8_kernel: bool = False) -> nn.Module:
    """Replace ``model``'s ``nn.Linear`` layers by :class:`QuantizedLinear` (in place); return it.

    ``method``: ``"rtn"`` (bits default 8), ``"gptq"``, ``"awq"`` (bits default 4, need
    ``calibration``) or ``"nf4"`` (4 bits; ``group_size`` is the block, default 64).
    ``group_size``: None for one scale per output channel, else groups of that many inputs.
    ``calibration``: what the model is called on (a tensor of ids, a tuple of arguments or a dict of
    keyword arguments). GPTQ and AWQ go layer by layer in the order of ``named_modules``, each
    layer's inputs recorded with the layers before it already quantised (GPTQ's sequential scheme).
    ``include`` / ``exclude``: regular expressions on the layer's qualified name (``re.search``);
    the output layer ``lm_head`` stays in full precision by default (it is tied to the embedding).
    ``int8_kernel``: 8-bit absmax per-channel layers run ``torch._weight_int8pack_mm``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if method == "nf4":
        if bits not in (None, 4):
            raise ValueError(f"bits: NF4 is a 4-bit format, got {bits!r}")
        bits = 4
    bits = check_bits(bits if bits is not None else (8 if method == "rtn" else 4))
    check_scheme(scheme)
    if group_size is not None:
        check_positive_int(group_size, "group_size")
    if method in ("gptq", "awq") and calibration is None:
        raise ValueError(f"calibration: method {method!r} needs calibration inputs, got None")
    granularity = "channel" if group_size is None else group_size
    names = _targets(model, include, exclude)
    if not names:
        raise ValueError(f"include/exclude: no nn.Linear of {type(model).__name__} matches "
                         f"include={include!r}, exclude={exclude!r}")
    was_training = model.training
    model.eval()
    for name in names:
        layer = model.get_submodule(name)
        bias = None if layer.bias is None else layer.bias.detach()
        if method in ("rtn", "nf4"):
            new = QuantizedLinear.from_linear(layer, method, bits, scheme, granularity,
                                              block_size=group_size or 64)
        elif method == "gptq":
            h = gptq_hessian(_inputs_of(model, layer, calibration))
            q = gptq_quantize(layer.weight, h, bits, scheme, granularity, block_size, damp)
            new = QuantizedLinear.from_quantized(q, bits, bias)
        else:
            x = _inputs_of(model, layer, calibration)
            s = awq_search(layer.weight, x, bits, scheme, granularity, n_grid).scales
            q = quantize(layer.weight.detach() * s, bits, scheme, granularity)
            new = QuantizedLinear.from_quantized(q, bits, bias, input_scale=1 / s)
        new.int8_kernel = bool(int8_kernel)
        model.set_submodule(name, new.to(layer.weight.device))
    model.train(was_training)
    return model


__all__ = ["METHODS", "QuantizedLinear", "model_nbytes", "quantize_model"]
