"""Quantisation: storing and running a model's weights in fewer bits (chapters 14 and 16).

One idea per module, each checked against its paper or a reference library:

* :mod:`~roadmap_lib.quantization.rtn`: round-to-nearest integers, absmax and zero-point, 2-8 bits,
  per tensor / per channel / group-wise, and int4 packing (two codes per byte);
* :mod:`~roadmap_lib.quantization.nf4`: NF4 with double quantisation (QLoRA), bit for bit
  bitsandbytes';
* :mod:`~roadmap_lib.quantization.llm_int8`: LLM.int8(), vector-wise int8 matmul with outlier
  decomposition;
* :mod:`~roadmap_lib.quantization.gptq`: GPTQ, column-by-column quantisation with error feedback;
* :mod:`~roadmap_lib.quantization.awq`: AWQ, activation-aware per-channel scaling;
* :mod:`~roadmap_lib.quantization.linear`: ``QuantizedLinear``, ``quantize_model`` and byte counts.
"""

from roadmap_lib.quantization.awq import AWQResult, activation_scale, awq_search, fold_scales
from roadmap_lib.quantization.gptq import (
    gptq_hessian,
    gptq_quantize,
    inverse_hessian_factor,
    layer_error,
)
from roadmap_lib.quantization.linear import METHODS, QuantizedLinear, model_nbytes, quantize_model
from roadmap_lib.quantization.llm_int8 import (
    int8_matmul,
    llm_int8_linear,
    outlier_columns,
    vectorwise_quantize,
)
from roadmap_lib.quantization.nf4 import (
    NF4_OFFSET,
    NF4Weight,
    dequantize_nf4,
    dynamic_code_book,
    nearest_code,
    nf4_absmax,
    nf4_code_book,
    quantize_nf4,
)
from roadmap_lib.quantization.rtn import (
    Quantized,
    code_range,
    dequantize,
    fake_quantize,
    pack_int4,
    qparams,
    quantize,
    quantize_with,
    unpack_int4,
)

__all__ = [
    "METHODS",
    "NF4_OFFSET",
    "AWQResult",
    "NF4Weight",
    "Quantized",
    "QuantizedLinear",
    "activation_scale",
    "awq_search",
    "code_range",
    "dequantize",
    "dequantize_nf4",
    "dynamic_code_book",
    "fake_quantize",
    "fold_scales",
    "gptq_hessian",
    "gptq_quantize",
    "int8_matmul",
    "inverse_hessian_factor",
    "layer_error",
    "llm_int8_linear",
    "model_nbytes",
    "nearest_code",
    "nf4_absmax",
    "nf4_code_book",
    "outlier_columns",
    "pack_int4",
    "qparams",
    "quantize",
    "quantize_model",
    "quantize_nf4",
    "quantize_with",
    "unpack_int4",
    "vectorwise_quantize",
]
