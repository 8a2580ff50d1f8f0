"""IA³ (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
In-Context Learning"): learn one vector per adapted layer that rescales activations elementwise.

The paper rescales the attention keys and values and the feed-forward network's hidden
activation:

    k <- l_k ⊙ k,    v <- l_v ⊙ v,    FFN(x) = W_down (l_ff ⊙ act(W_up x))

peft implements this on linear layers: a *non-feed-forward* target (the key and value
projections) has its output multiplied, ``y = l ⊙ (W x + b)``; a *feed-forward* target (the
down-projection) has its input multiplied, ``y = W (l ⊙ x) + b``, which is the paper's
``l_ff ⊙ act(...)``. The vectors start at one, so the model starts unchanged. Both forms fold into
the weight: output scaling multiplies rows of ``W`` and ``b``, input scaling columns of ``W``.

Defaults that match peft's for its models: GPT-2 ``["c_attn", "mlp.c_proj"]`` (feed-forward
``["mlp.c_proj"]``; the fused ``c_attn`` also rescales the queries), Llama
``["k_proj", "v_proj", "down_proj"]`` (feed-forward ``["down_proj"]``); the same names fit our
GPT and Llama.
"""

from __future__ import annotations

import torch
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


class IA3Linear(AdapterLayer):
    """``base`` with a learned vector ``ia3``: ``(in,)`` scaling the input when ``feedforward``,
    else ``(out,)`` scaling the output (bias included). x: ``(..., in)`` -> ``(..., out)``."""

    adapter_params = ("ia3",)

    def __init__(self, base: nn.Module, feedforward: bool = False) -> None:
        super().__init__(base)
        self.in_features, self.out_features = linear_features(base)
        self.feedforward = feedforward
        weight = dense_weight(base)
        size = self.in_features if feedforward else self.out_features
        self.ia3 = nn.Parameter(torch.ones(size, dtype=weight.dtype, device=weight.device))
        self.tied_to: list[str] = []

    def extra_repr(self) -> str:
        return f"scales the {'input' if self.feedforward else 'output'} ({self.ia3.numel()})"

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.merged:
            return self.base(x, *args, **kwargs)
        if self.feedforward:
            return self.base(x * self.ia3, *args, **kwargs)
        return self.base(x, *args, **kwargs) * self.ia3

    @torch.no_grad()
    def _fold(self, factor: torch.Tensor, who: str) -> None:
        weight = dense_weight(self.base)
        if self.feedforward:
            set_dense_weight(self.base, weight * factor[None, :], who=who)
            return
        set_dense_weight(self.base, weight * factor[:, None], who=who)
        if getattr(self.base, "bias", None) is not None:
            self.base.bias.mul_(factor)

    def merge(self) -> None:
        """Fold the vector into the weight (rows and bias, or columns)."""
        if self.merged:
            raise ValueError("merge: this IA³ layer is already merged; call unmerge() first")
        if self.tied_to:
            raise ValueError(f"merge: the base weight is tied to {self.tied_to}; merging would "
                             "change those too")
        self._fold(self.ia3.detach(), "merge")
        self.merged = True

    def unmerge(self) -> None:
        if not self.merged:
            raise ValueError("unmerge: this IA³ layer is not merged; call merge() first")
        if (self.ia3 == 0).any():
            raise ValueError("unmerge: the IA³ vector has zero entries; the merged weight lost "
                             "those rows or columns and cannot be divided back")
        self._fold(1.0 / self.ia3.detach(), "unmerge")
        self.merged = False


def apply_ia3(model: nn.Module, target_modules, feedforward_modules=()) -> nn.Module:
    """Wrap the layers ``target_modules`` names (peft's matching rule) in :class:`IA3Linear`, in
    place, and freeze everything else; those that ``feedforward_modules`` also names scale their
    input. Every feed-forward module must be a target (as in peft). Returns ``model``."""
    names = find_modules(model, target_modules)
    ff = set(find_modules(model, list(feedforward_modules), what="feedforward_modules")
             if feedforward_modules else [])
    if not ff <= set(names):
        raise ValueError(f"feedforward_modules: expected a subset of the target modules, got "
                         f"{sorted(ff - set(names))} that target_modules does not pick")
    for name in names:
        layer = IA3Linear(model.get_submodule(name), feedforward=name in ff)
        layer.tied_to = shared_weight(model, name)
        replace_module(model, name, layer)
    mark_only_adapters_trainable(model)
    return model


def ia3_layers(model: nn.Module) -> dict[str, IA3Linear]:
    return adapter_layers(model, IA3Linear)


__all__ = ["IA3Linear", "apply_ia3", "ia3_layers"]
