"""Bottleneck adapters (Houlsby et al. 2019, "Parameter-Efficient Transfer Learning for NLP").

A small residual MLP is inserted after a sublayer (the paper: after the attention sublayer and
after the feed-forward sublayer, before each is added back to the residual stream):

    h <- h + W_up act(W_down h),      W_down: (m, d), W_up: (d, m), m << d

Only the adapters (and, in the paper, the layer norms) are trained. The up-projection starts at
zero, so the adapter starts as the identity and the model starts unchanged (the paper's
"near-identity" initialisation, made exact). Unlike LoRA, an adapter adds a sequential step that
cannot be merged into a weight: it costs latency at inference.
"""

from __future__ import annotations

import torch
from torch import nn

from roadmap_lib.layers import ACTIVATIONS
from roadmap_lib.peft._targets import (
    AdapterLayer,
    adapter_layers,
    find_modules,
    is_linear_like,
    linear_features,
    mark_only_adapters_trainable,
    replace_module,
)


class BottleneckAdapter(nn.Module):
    """``h + up(act(down(h)))``; h: ``(..., d_model)``."""

    def __init__(self, d_model: int, bottleneck: int, activation: str = "relu") -> None:
        super().__init__()
        for name, v in (("d_model", d_model), ("bottleneck", bottleneck)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.down = nn.Linear(d_model, bottleneck)
        self.act = ACTIVATIONS[activation]
        self.up = nn.Linear(bottleneck, d_model)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.act(self.down(h)))


def _output_width(module: nn.Module) -> int | None:
    """The width of a sublayer's output: its own ``out_features``, else the last linear layer's."""
    if is_linear_like(module):
        return linear_features(module)[1]
    last = [m for m in module.modules() if is_linear_like(m)]
    return linear_features(last[-1])[1] if last else None


class AdapterAfter(AdapterLayer):
    """Runs ``base`` and passes its output (the first element if it returns a tuple, as
    transformers' attention does) through a :class:`BottleneckAdapter`."""

    adapter_params = ("adapter",)

    def __init__(self, base: nn.Module, d_model: int, bottleneck: int,
                 activation: str = "relu") -> None:
        super().__init__(base)
        self.adapter = BottleneckAdapter(d_model, bottleneck, activation)
        ref = next(base.parameters(), None)
        if ref is not None:
            self.adapter.to(device=ref.device, dtype=ref.dtype)

    def forward(self, *args, **kwargs):
        out = self.base(*args, **kwargs)
        if isinstance(out, tuple):
            return (self.adapter(out[0]), *out[1:])
        return self.adapter(out)


def apply_adapters(
    model: nn.Module, after, bottleneck: int = 16, *, activation: str = "relu",
    d_model: int | None = None, train_norms: bool = False,
) -> nn.Module:
    """Insert a bottleneck adapter after every module that ``after`` names (peft's matching
    rule), in place, and freeze everything else (but the norms' weights with ``train_norms``,
    as Houlsby et al. do). ``d_model`` defaults to the width of the module's last linear layer.
    For our blocks: ``after=["attn", "ffn"]``. Returns ``model``."""
    names = find_modules(model, after, what="after", linear_only=False)
    for name in names:
        base = model.get_submodule(name)
        width = d_model if d_model is not None else _output_width(base)
        if width is None:
            raise ValueError(f"d_model: {name!r} ({type(base).__name__}) has no linear layer to "
                             "read its output width from; pass d_model")
        replace_module(model, name, AdapterAfter(base, width, bottleneck, activation))
    norms = [p for n, m in model.named_modules() if "norm" in type(m).__name__.lower()
             for p in m.parameters(recurse=False)] if train_norms else []
    mark_only_adapters_trainable(model, also=norms)
    return model


def adapter_after_layers(model: nn.Module) -> dict[str, AdapterAfter]:
    return adapter_layers(model, AdapterAfter)


__all__ = ["AdapterAfter", "BottleneckAdapter", "adapter_after_layers", "apply_adapters"]
