"""LoRA (Hu et al. 2021), rsLoRA (Kalajdzievski 2023) and DoRA (Liu et al. 2024).

LoRA freezes a linear layer's weight ``W`` (out, in) and learns a low-rank update next to it:

    y = W x + b + s · B A dropout(x),     A: (r, in),  B: (out, r),  s = α / r

``A`` starts like an ``nn.Linear`` weight (Kaiming-uniform, a = √5, as in peft and the original
loralib) and ``B`` at zero, so the wrapped model starts *equal* to the base model. rsLoRA changes
only the scale, ``s = α / √r``, which keeps the update's size stable as the rank grows.

DoRA splits the adapted weight into a magnitude and a direction, one per output row:

    W' = m ⊙ (W + s B A) / ‖W + s B A‖_row,      m starts at ‖W‖_row

and, as the paper (section 4.3) and peft do, treats the norm as a constant in the backward pass
(it is computed from a detached ``B A``, and the result is detached).

``merge()`` folds the update into ``W`` (inference costs nothing extra), ``unmerge()`` takes it
back out; both are exact up to float rounding. LoRA wraps any linear-like layer (see
:mod:`roadmap_lib.peft._targets`), including transformers' ``Conv1D`` and, for QLoRA, a quantized
layer with ``dequantize()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from roadmap_lib.peft._targets import (
    AdapterLayer,
    adapter_layers,
    dense_weight,
    find_modules,
    linear_features,
    mark_only_adapters_trainable,
    replace_module,
    set_dense_weight,
    shared_weight,
)


@dataclass
class LoRAConfig:
    """Which layers get LoRA, and its hyper-parameters (names as in peft's ``LoraConfig``:
    ``r``, ``lora_alpha`` -> ``alpha``, ``lora_dropout`` -> ``dropout``)."""

    target_modules: list[str] | tuple[str, ...] | str
    r: int = 8
    alpha: float = 8.0
    dropout: float = 0.0
    use_rslora: bool = False
    use_dora: bool = False

    def __post_init__(self) -> None:
        check_lora_args(self.r, self.alpha, self.dropout)

    @property
    def scaling(self) -> float:
        return lora_scaling(self.r, self.alpha, self.use_rslora)


def check_lora_args(r, alpha, dropout) -> None:
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise ValueError(f"r: expected an int rank >= 1, got {r!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"alpha: expected a number > 0, got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")


def lora_scaling(r: int, alpha: float, use_rslora: bool = False) -> float:
    """``α / r`` (LoRA) or ``α / √r`` (rsLoRA)."""
    return alpha / math.sqrt(r) if use_rslora else alpha / r


class LoRALinear(AdapterLayer):
    """A linear-like ``base`` layer plus a rank-``r`` update (and a DoRA magnitude if asked).

    x: ``(..., in)`` -> ``(..., out)``. Parameters: ``lora_A`` (r, in), ``lora_B`` (out, r) and,
    with DoRA, ``lora_magnitude`` (out,).
    """

    adapter_params = ("lora_A", "lora_B", "lora_magnitude")

    def __init__(
        self, base: nn.Module, r: int = 8, alpha: float = 8.0, dropout: float = 0.0,
        use_rslora: bool = False, use_dora: bool = False,
    ) -> None:
        super().__init__(base)
        check_lora_args(r, alpha, dropout)
        self.in_features, self.out_features = linear_features(base)
        weight = dense_weight(base)
        kw = {"dtype": weight.dtype, "device": weight.device}
        self.r, self.alpha, self.use_rslora, self.use_dora = r, alpha, use_rslora, use_dora
        self.scaling = lora_scaling(r, alpha, use_rslora)
        self.lora_A = nn.Parameter(torch.empty(r, self.in_features, **kw))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r, **kw))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        # B = 0, so the adapted weight is W and its row norms are m's starting value
        self.lora_magnitude = nn.Parameter(weight.detach().norm(dim=1)) if use_dora else None
        self.tied_to: list[str] = []  # filled by apply_lora: other names of the base weight
        self._merged_norm: torch.Tensor | None = None

    def extra_repr(self) -> str:
        kind = "DoRA" if self.use_dora else "LoRA"
        return (f"{kind} r={self.r}, alpha={self.alpha}, scaling={self.scaling:.4g}"
                f"{' (rsLoRA)' if self.use_rslora else ''}")

    def delta_weight(self) -> torch.Tensor:
        """The ``(out, in)`` update ``s · B A``."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def _row_norm(self, weight: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return torch.linalg.norm(weight + delta, dim=1).detach()

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        out = self.base(x, *args, **kwargs)
        if self.merged:
            return out
        h = self.dropout(x)
        update = F.linear(F.linear(h, self.lora_A), self.lora_B) * self.scaling
        if self.lora_magnitude is None:
            return out + update
        weight = dense_weight(self.base).to(x.dtype)
        # the norm is a constant for the backward pass (DoRA section 4.3): B A enters detached
        norm = self._row_norm(weight, self.delta_weight().detach())
        scale = self.lora_magnitude / norm  # (out,)
        if isinstance(self.dropout, nn.Identity) or not self.training:
            bias = getattr(self.base, "bias", None)
            base_part = out if bias is None else out - bias  # W x, reused from the base output
        else:
            base_part = F.linear(h, weight)  # the direction sees the same dropped-out input
        # m ⊙ (W + sBA) x / ‖·‖ + b, written as a correction of the base output
        return out + (scale - 1) * base_part + scale * update

    @torch.no_grad()
    def merge(self) -> None:
        """W <- W + s B A (DoRA: W <- m ⊙ (W + s B A) / ‖W + s B A‖_row), for inference: a
        merged layer is the base layer alone, so the adapter gets no gradient until unmerged."""
        if self.merged:
            raise ValueError("merge: this LoRA layer is already merged; call unmerge() first")
        if self.tied_to:
            raise ValueError(
                f"merge: the base weight is tied to {self.tied_to}; merging would change those "
                "too (untie the weights, or keep the adapter unmerged)"
            )
        weight, delta = dense_weight(self.base), self.delta_weight()
        if self.lora_magnitude is None:
            new = weight + delta
        else:
            self._merged_norm = self._row_norm(weight, delta)
            new = (self.lora_magnitude / self._merged_norm)[:, None] * (weight + delta)
        set_dense_weight(self.base, new, who="merge")
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo :meth:`merge` (the adapter must not have changed in between)."""
        if not self.merged:
            raise ValueError("unmerge: this LoRA layer is not merged; call merge() first")
        weight, delta = dense_weight(self.base), self.delta_weight()
        if self.lora_magnitude is not None:
            weight = weight / (self.lora_magnitude / self._merged_norm)[:, None]
            self._merged_norm = None
        set_dense_weight(self.base, weight - delta, who="unmerge")
        self.merged = False


def apply_lora(model: nn.Module, config: LoRAConfig) -> nn.Module:
    """Wrap every layer of ``model`` that ``config.target_modules`` names in a :class:`LoRALinear`,
    in place, and freeze everything else. Returns ``model``.

    Works on our models (``["q_proj", "v_proj"]``) and on transformers' (``["c_attn"]`` for
    GPT-2, ``["q_proj", "v_proj"]`` for Llama, ``["query", "value"]`` for BERT).
    """
    if not isinstance(config, LoRAConfig):
        raise TypeError(f"config: expected a LoRAConfig, got {type(config).__name__}")
    for name in find_modules(model, config.target_modules):
        tied = shared_weight(model, name)
        layer = LoRALinear(model.get_submodule(name), config.r, config.alpha, config.dropout,
                           config.use_rslora, config.use_dora)
        layer.tied_to = tied
        replace_module(model, name, layer)
    mark_only_adapters_trainable(model)
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """``{dotted name: LoRALinear}`` in model order."""
    return adapter_layers(model, LoRALinear)


__all__ = ["LoRAConfig", "LoRALinear", "apply_lora", "lora_layers", "lora_scaling"]
