"""QLoRA (Dettmers et al. 2023): LoRA on top of a frozen base stored in NF4.

The base model's linear layers are quantised to NF4 with double quantisation
(:mod:`roadmap_lib.quantization.nf4`, bit for bit bitsandbytes'), about 4.13 bits per weight, and
frozen: they are buffers of a :class:`~roadmap_lib.quantization.QuantizedLinear`, so they cannot
even receive a gradient. The LoRA factors ``A`` and ``B`` stay in float32 and are the only
parameters that train:

    y = dequant(W_nf4) x + b + s · B A x

The gradient still flows *through* the frozen base to earlier layers (``dequant(W)`` is a constant
in the graph), which is what makes LoRA on a 4-bit model possible at all. Here the dequantised
weight is rebuilt on every call, as bitsandbytes does on the CPU.

**Merging.** An NF4 weight cannot absorb ``s B A`` exactly: ``W + s B A`` is not on the NF4 grid.
:func:`merge_qlora` does what peft does when it merges into a 4-bit layer: dequantise, add the
update, and *quantise again*. The merged model is NF4 and as small as before, but its outputs move
by a new rounding error (measured in ``tests/test_peft_qlora.py``). For exact outputs, keep the
adapter unmerged, or merge into a float copy (``dequantize=True``): a plain ``nn.Linear`` holding
``dequant(W) + s B A``, four times as large, equal to the unmerged model up to float rounding.
``LoRALinear.merge()`` itself refuses a quantised base with a ``TypeError``.

Verified against ``peft``'s LoRA on bitsandbytes' ``Linear4bit`` (NF4, on CPU tensors): same
outputs, same gradients of ``A`` and ``B`` (``tests/test_peft_qlora.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from roadmap_lib.peft._targets import replace_module
from roadmap_lib.peft.lora import LoRAConfig, LoRALinear, apply_lora, lora_layers
from roadmap_lib.quantization import QuantizedLinear, quantize_model, quantize_nf4


def apply_qlora(model: nn.Module, config: LoRAConfig, *, block_size: int = 64,
                exclude: str | None = "lm_head") -> nn.Module:
    """Quantise every ``nn.Linear`` of ``model`` to NF4 (blocks of ``block_size``, double
    quantised; ``exclude`` is a regex of names to keep in float, by default the output layer,
    which our models tie to the embedding), then add LoRA to ``config.target_modules`` and freeze
    everything but the LoRA factors. In place; returns ``model``."""
    if not isinstance(config, LoRAConfig):
        raise TypeError(f"config: expected a LoRAConfig, got {type(config).__name__}")
    quantize_model(model, "nf4", group_size=block_size, exclude=exclude)
    return apply_lora(model, config)


def frozen_base_nbytes(model: nn.Module) -> int:
    """Bytes that the NF4 layers of ``model`` store (codes, absmax codes, scales, offset, bias)."""
    layers = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    if not layers:
        raise ValueError(f"model: {type(model).__name__} has no quantised linear layers")
    return sum(m.nbytes for m in layers)


def _float_linear(layer: LoRALinear) -> nn.Linear:
    """``dequant(W) + ΔW`` (DoRA: the merged DoRA weight) as an ``nn.Linear``."""
    base = layer.base
    weight = base.dequantized_weight(torch.float32)
    float_base = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
    with torch.no_grad():
        float_base.weight.copy_(weight)
        if base.bias is not None:
            float_base.bias.copy_(base.bias)
    merged = LoRALinear(float_base, layer.r, layer.alpha, 0.0, layer.use_rslora, layer.use_dora)
    merged.load_state_dict(layer.state_dict(), strict=False)  # the adapter's A, B, magnitude
    merged.merge()
    return merged.base


@torch.no_grad()
def merge_qlora(model: nn.Module, *, dequantize: bool = False) -> nn.Module:
    """Fold every LoRA adapter on an NF4 base into that base and drop the adapter (in place).

    ``dequantize=False``: the new weight ``dequant(W) + s B A`` is quantised to NF4 again (same
    block size), so the model stays 4-bit and its outputs change by that rounding.
    ``dequantize=True``: the layer becomes a float ``nn.Linear`` with the exact merged weight.
    Returns ``model`` (its parameters are left frozen).
    """
    layers = {n: m for n, m in lora_layers(model).items() if isinstance(m.base, QuantizedLinear)}
    if not layers:
        raise ValueError(f"model: {type(model).__name__} has no LoRA layer on a quantised base")
    for name, layer in layers.items():
        if layer.base.fmt != "nf4":
            raise TypeError(f"model: {name!r} is quantised as {layer.base.fmt!r}; merge_qlora "
                            "expects an NF4 base")
        float_layer = _float_linear(layer)
        if dequantize:
            new = float_layer.requires_grad_(False)
        else:
            q = quantize_nf4(float_layer.weight, block_size=layer.base.block_size,
                             scale_block_size=layer.base.scale_block_size)
            bias = None if float_layer.bias is None else float_layer.bias.detach()
            new = QuantizedLinear.from_nf4(q, bias)
        replace_module(model, name, new)
    return model


__all__ = ["apply_qlora", "frozen_base_nbytes", "merge_qlora"]
