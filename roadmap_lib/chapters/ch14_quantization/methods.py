"""The rows of chapter 14's table: each a recipe that turns the float32 GPT into a quantised copy.

Most rows are :func:`roadmap_lib.quantization.quantize_model` with some settings. Two are not:

* ``dynamic``: PyTorch's own int8 kernels, ``torch.ao.quantization.quantize_dynamic`` (weights
  int8 per output channel, activations quantised to 8 bits per call, an int8 GEMM from fbgemm or
  oneDNN). ``torch.ao.quantization`` is deprecated in favour of torchao but still ships in the
  torch this book pins; its deprecation warnings are silenced here.
* ``llm_int8``: :class:`LLMInt8Linear`, a layer that stores int8 rows and runs
  :func:`roadmap_lib.quantization.llm_int8_linear` (int8 matmul with the outlier features kept in
  floating point).

Every recipe leaves the output layer ``lm_head`` in float32: it is the token embedding (tied), and
the embeddings are looked up, not multiplied. :func:`weight_bits` and :func:`total_bytes` count
what a variant really stores.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from roadmap_lib.quantization import QuantizedLinear, llm_int8_linear, model_nbytes, quantize_model

KINDS = ("fp32", "bf16", "rtn", "gptq", "awq", "nf4", "dynamic", "llm_int8")


@dataclass(frozen=True)
class Method:
    """One row of the table. ``bits``: the nominal bits of a weight code (32 for float32)."""

    key: str
    label: str
    kind: str
    bits: int
    group_size: int | None = None  # None: one scale per output channel (NF4: its block of 64)

    @property
    def calibrated(self) -> bool:
        """GPTQ and AWQ read calibration inputs; their result depends on the calibration seed."""
        return self.kind in ("gptq", "awq")


METHODS = [
    Method("fp32", "float32", "fp32", 32),
    Method("bf16", "bfloat16", "bf16", 16),
    Method("int8-rtn", "int8 RTN (per channel)", "rtn", 8),
    Method("int8-dynamic", "int8 torch dynamic (per channel)", "dynamic", 8),
    Method("llm-int8", "LLM.int8() (threshold 6)", "llm_int8", 8),
    Method("int4-rtn-g128", "int4 RTN (group 128)", "rtn", 4, 128),
    Method("int4-rtn-g32", "int4 RTN (group 32)", "rtn", 4, 32),
    Method("int4-gptq-g128", "int4 GPTQ (group 128)", "gptq", 4, 128),
    Method("int4-awq-g128", "int4 AWQ (group 128)", "awq", 4, 128),
    Method("nf4", "NF4 (block 64, double quant.)", "nf4", 4, 64),
    Method("int3-rtn-g128", "3-bit RTN (group 128)", "rtn", 3, 128),
    Method("int3-gptq-g128", "3-bit GPTQ (group 128)", "gptq", 3, 128),
]
BY_KEY = {m.key: m for m in METHODS}


def method(key: str) -> Method:
    if key not in BY_KEY:
        raise ValueError(f"key: expected one of {sorted(BY_KEY)}, got {key!r}")
    return BY_KEY[key]


def quantizable(model: nn.Module) -> list[str]:
    """Names of the ``nn.Linear`` layers the recipes quantise: all but ``lm_head``."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "lm_head"]


# ---------------------------------------------------------------------------------- LLM.int8()


class LLMInt8Linear(nn.Module):
    """A linear layer stored as LLM.int8() stores it: int8 codes per output row and one float32
    absmax per row (``codes = round(127 w / absmax(row))``), plus the float32 bias.

    ``forward`` dequantises the rows and calls :func:`~roadmap_lib.quantization.llm_int8_linear`,
    which keeps the input features with some ``|x| >= threshold`` in floating point and multiplies
    the rest in int8 (it requantises the regular columns of each row, which gives back the stored
    codes whenever a row's largest weight lies in a regular column).
    """

    def __init__(self, codes: torch.Tensor, absmax: torch.Tensor, bias: torch.Tensor | None,
                 threshold: float | None = 6.0) -> None:
        super().__init__()
        if codes.dtype != torch.int8 or codes.ndim != 2 or absmax.shape != codes.shape[:1]:
            raise ValueError(f"codes, absmax: expected int8 (out, in) and (out,), got {codes.dtype} "
                             f"{tuple(codes.shape)} and {tuple(absmax.shape)}")
        self.out_features, self.in_features = codes.shape
        self.threshold = threshold
        self.register_buffer("codes", codes)
        self.register_buffer("absmax", absmax.float())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, threshold: float | None = 6.0) -> LLMInt8Linear:
        w = linear.weight.detach().float()
        absmax = w.abs().amax(dim=1)
        codes = torch.round(w * (127 / absmax.clamp(min=1e-12)).unsqueeze(1)).to(torch.int8)
        return cls(codes, absmax, linear.bias, threshold)

    def dequantized_weight(self) -> torch.Tensor:
        return self.codes.float() * (self.absmax / 127).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return llm_int8_linear(x, self.dequantized_weight(), self.bias, self.threshold)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, threshold={self.threshold}"


def llm_int8_model(model: nn.Module, threshold: float | None = 6.0) -> nn.Module:
    """A copy of ``model`` with every quantisable ``nn.Linear`` an :class:`LLMInt8Linear`."""
    out = copy.deepcopy(model)
    for name in quantizable(out):
        out.set_submodule(name, LLMInt8Linear.from_linear(out.get_submodule(name), threshold))
    return out.eval()


# ------------------------------------------------------------------------- torch's int8 kernels


def dynamic_int8_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` through ``torch.ao.quantization.quantize_dynamic``: int8 weights per
    output channel (symmetric), activations quantised per call; ``lm_head`` stays float32."""
    ao = torch.ao.quantization
    spec = {name: ao.per_channel_dynamic_qconfig for name in quantizable(model)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices of torch.ao.quantization
        return ao.quantize_dynamic(copy.deepcopy(model), spec, dtype=torch.qint8).eval()


def _is_dynamic(m: nn.Module) -> bool:
    return type(m).__module__.startswith("torch.ao.nn.quantized.dynamic")


def _dynamic_weight_bytes(m: nn.Module) -> tuple[int, int]:
    """(bytes of the int8 weight with its per-channel scales and zero points, bytes of the bias)."""
    w = m.weight()
    n = w.numel() * w.element_size()
    if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        for t in (w.q_per_channel_scales(), w.q_per_channel_zero_points()):
            n += t.numel() * t.element_size()
    else:
        n += 16  # one float64 scale and one int64 zero point
    b = m.bias()
    return n, 0 if b is None else b.numel() * b.element_size()


# --------------------------------------------------------------------------------- the recipes


def build(model: nn.Module, method: Method | str, calibration: torch.Tensor | None = None) -> nn.Module:
    """A quantised copy of ``model`` (``model`` is untouched), in eval mode.

    ``calibration``: token ids (batch, seq) for GPTQ and AWQ; ignored by the other recipes.
    """
    m = method if isinstance(method, Method) else BY_KEY.get(method)
    if m is None:
        raise ValueError(f"method: expected a Method or one of {sorted(BY_KEY)}, got {method!r}")
    if m.calibrated and calibration is None:
        raise ValueError(f"calibration: {m.label} needs calibration ids (batch, seq), got None")
    if m.kind == "fp32":
        return copy.deepcopy(model).eval()
    if m.kind == "bf16":
        return copy.deepcopy(model).to(torch.bfloat16).eval()
    if m.kind == "dynamic":
        return dynamic_int8_model(model)
    if m.kind == "llm_int8":
        return llm_int8_model(model)
    out = quantize_model(copy.deepcopy(model), m.kind, bits=m.bits, group_size=m.group_size,
                         calibration=calibration if m.calibrated else None)
    return out.eval()


def weight_bits(model: nn.Module) -> float:
    """Bits per weight of the layers a recipe quantises: everything the weight matrices store
    (codes, scales, zero points, NF4's absmax, AWQ's input scales), biases not counted, divided by
    the number of weights. ``lm_head`` (float32 in every recipe) is left out."""
    bits = weights = 0
    for name, m in model.named_modules():
        if name == "lm_head":
            continue
        if isinstance(m, nn.Linear):
            bits += 8 * m.weight.numel() * m.weight.element_size()
            weights += m.weight.numel()
        elif isinstance(m, (QuantizedLinear, LLMInt8Linear)):
            bits += 8 * sum(b.untyped_storage().nbytes() for n, b in m.named_buffers() if n != "bias")
            weights += m.in_features * m.out_features
        elif _is_dynamic(m):
            bits += 8 * _dynamic_weight_bytes(m)[0]
            weights += m.in_features * m.out_features
    if not weights:
        raise ValueError("model: no linear layers found")
    return bits / weights


def total_bytes(model: nn.Module) -> int:
    """Every byte the model stores: parameters and buffers (a tied matrix once), plus the packed
    weights of torch's dynamic int8 layers (which are neither)."""
    n = model_nbytes(model)
    for m in model.modules():
        if _is_dynamic(m):
            n += sum(_dynamic_weight_bytes(m))
    return n


def storage_breakdown(model: nn.Module) -> dict[str, int]:
    """Bytes by kind: ``codes`` (weight codes, or float weights of the linear layers), ``scales``
    (scales, zero points, absmax, input scales), ``biases``, ``embeddings`` (token and position
    tables, i.e. also the tied output layer) and ``norms``. Sums to :func:`total_bytes` for
    float and :class:`~roadmap_lib.quantization.QuantizedLinear` models."""
    out = dict.fromkeys(("codes", "scales", "biases", "embeddings", "norms"), 0)
    seen: set[int] = set()

    def add(kind: str, t: torch.Tensor | None) -> None:
        if t is None:
            return
        s = t.untyped_storage()
        if s.data_ptr() not in seen:
            seen.add(s.data_ptr())
            out[kind] += s.nbytes()

    for name, m in model.named_modules():
        if isinstance(m, nn.Embedding):
            add("embeddings", m.weight)
        elif isinstance(m, nn.Linear):
            add("embeddings" if name == "lm_head" else "codes", m.weight)
            add("biases", m.bias)
        elif isinstance(m, (QuantizedLinear, LLMInt8Linear)):
            for n, b in m.named_buffers():
                add("biases" if n == "bias" else "codes" if n == "codes" else "scales", b)
        elif not list(m.children()):
            for p in m.parameters(recurse=False):
                add("norms", p)
    return out


__all__ = ["BY_KEY", "KINDS", "METHODS", "LLMInt8Linear", "Method", "build", "dynamic_int8_model",
           "llm_int8_model", "method", "quantizable", "storage_breakdown", "total_bytes",
           "weight_bits"]
