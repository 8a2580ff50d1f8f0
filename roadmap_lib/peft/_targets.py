"""What every adapter needs: find the layers to wrap by name, read their weight, swap a module in
place, freeze everything but the adapter.

**Target names** follow peft's rule, so the same list picks the same layers in both libraries:

- a list (or tuple) of names matches a module whose dotted name *equals* a name or *ends with*
  ``"." + name``: ``["c_attn"]`` matches ``transformer.h.0.attn.c_attn``, ``["mlp.c_proj"]`` only
  the MLP's ``c_proj`` (not the attention's);
- a single string is a regular expression that must match the *whole* dotted name:
  ``r".*\\.(q|v)_proj"``.

**Linear-like layers** are the ones LoRA and IA³ wrap: ``nn.Linear`` (weight ``(out, in)``),
transformers' ``Conv1D`` (GPT-2; the same map with the weight stored transposed, ``(in, out)``),
and, as the hook for QLoRA, any module with ``in_features``, ``out_features`` and a
``dequantize()`` or ``dequantized_weight()`` that returns the ``(out, in)`` float weight (e.g.
``roadmap_lib.quantization``'s NF4/int layers): the adapter calls the module itself for the base
output and reads the dequantized weight only where it needs it (DoRA's norm), so such a layer
trains like any other but cannot be merged into.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
from torch import nn

from roadmap_lib.measure import count_parameters


def is_conv1d(module: nn.Module) -> bool:
    """transformers' ``Conv1D`` (GPT-2): ``y = x @ W + b`` with ``W`` shaped ``(in, out)``."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "nx")


#: the methods a quantized layer may offer that return its ``(out, in)`` float weight
DEQUANTIZE = ("dequantize", "dequantized_weight")


def _dequantizer(module: nn.Module):
    return next((getattr(module, n) for n in DEQUANTIZE if callable(getattr(module, n, None))),
                None)


def is_quantized(module: nn.Module) -> bool:
    return (_dequantizer(module) is not None and hasattr(module, "in_features")
            and hasattr(module, "out_features") and not isinstance(module, nn.Linear))


def is_linear_like(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or is_conv1d(module) or is_quantized(module)


def linear_features(module: nn.Module) -> tuple[int, int]:
    """``(in_features, out_features)`` of a linear-like layer."""
    if is_conv1d(module):
        return module.nx, module.nf
    return module.in_features, module.out_features


def dense_weight(module: nn.Module) -> torch.Tensor:
    """The ``(out, in)`` weight of a linear-like layer, laid out as ``nn.Linear`` keeps it (a view
    for ``Conv1D``, the dequantized copy for a quantized layer)."""
    if is_conv1d(module):
        return module.weight.T
    if is_quantized(module):
        return _dequantizer(module)()
    return module.weight


def set_dense_weight(module: nn.Module, weight: torch.Tensor, *, who: str) -> None:
    """Overwrite a layer's weight with ``weight`` given ``(out, in)``; refuses quantized layers."""
    if is_quantized(module):
        raise TypeError(
            f"{who}: the base layer is quantized ({type(module).__name__}); merging needs a float "
            "weight, so dequantize the layer (or keep the adapter unmerged)"
        )
    with torch.no_grad():
        module.weight.copy_(weight.T if is_conv1d(module) else weight)


class AdapterLayer(nn.Module):
    """A wrapper around one layer of a model (its ``base``); subclasses add adapter parameters,
    named in ``adapter_params``, and may implement ``merge``/``unmerge``."""

    adapter_params: tuple[str, ...] = ()

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        if isinstance(base, AdapterLayer):
            raise TypeError(
                f"base: this layer already has an adapter ({type(base).__name__}); unload it "
                "first (roadmap_lib.peft.unload) or target a different layer"
            )
        self.base = base
        self.merged = False

    def adapter_parameters(self) -> Iterable[nn.Parameter]:
        for attr in self.adapter_params:
            value = getattr(self, attr)
            if isinstance(value, nn.Module):
                yield from value.parameters()
            elif value is not None:
                yield value

    def merge(self) -> None:
        raise TypeError(f"merge: a {type(self).__name__} cannot be merged into the base weight")

    def unmerge(self) -> None:
        raise TypeError(f"unmerge: a {type(self).__name__} is never merged")


# --------------------------------------------------------------------------------- matching


def _check_targets(targets, what: str) -> list[str] | str:
    if isinstance(targets, str):
        if not targets:
            raise ValueError(f"{what}: expected a non-empty regex or list of names, got ''")
        return targets
    if not isinstance(targets, (list, tuple, set, frozenset)) or not targets:
        raise TypeError(f"{what}: expected a non-empty list of module names or a regex string, "
                        f"got {targets!r}")
    for t in targets:
        if not isinstance(t, str) or not t:
            raise TypeError(f"{what}: expected module names (non-empty str), got {t!r}")
    return sorted(targets)


def name_matches(name: str, targets: list[str] | str) -> bool:
    """peft's rule: a regex string must match the whole name; a name in a list must equal the
    module's name or be a dotted suffix of it."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def find_modules(
    model: nn.Module, targets, *, what: str = "target_modules", linear_only: bool = True,
) -> list[str]:
    """Dotted names of the modules of ``model`` that ``targets`` picks, in model order.

    Every name in a list must pick at least one module, and a regex at least one, else a
    ``ValueError`` lists the names that exist; with ``linear_only`` a picked module that is not
    linear-like is a ``TypeError``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    targets = _check_targets(targets, what)
    names = [n for n, _ in model.named_modules() if n]
    modules = dict(model.named_modules())
    picked = [n for n in names if name_matches(n, targets)]
    unmatched = ([targets] if not picked else []) if isinstance(targets, str) else [
        t for t in targets if not any(name_matches(n, [t]) for n in names)]
    if unmatched:
        pool = [n for n in names if is_linear_like(modules[n])] if linear_only else names
        have = sorted({n.rsplit(".", 1)[-1] for n in pool})
        raise ValueError(
            f"{what}: {unmatched} matched no module of {type(model).__name__}; "
            f"{'linear layers' if linear_only else 'modules'} there are named (last part): "
            f"{', '.join(have) or 'none'}"
        )
    if linear_only:
        for n in picked:
            m = modules[n]
            if isinstance(m, AdapterLayer):
                raise TypeError(f"{what}: {n!r} already has an adapter ({type(m).__name__}); "
                                 "unload it first")
            if not is_linear_like(m):
                raise TypeError(
                    f"{what}: {n!r} is a {type(m).__name__}; expected a linear layer (nn.Linear, "
                    "transformers' Conv1D, or a quantized linear with dequantize() or "
                    "dequantized_weight())"
                )
    return picked


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule ``name`` (dotted) is, in the same train/eval mode (a new
    wrapper would otherwise be in training mode, its dropout on, inside an eval-mode model)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    new.train(getattr(parent, child).training)
    setattr(parent, child, new)


def shared_weight(model: nn.Module, name: str) -> list[str]:
    """Other parameter names that hold the same tensor as ``name + '.weight'`` (tied weights); none
    for a quantised layer, which has no ``weight`` parameter to share."""
    target = getattr(model.get_submodule(name), "weight", None)
    if target is None:
        return []
    return [n for n, p in model.named_parameters(remove_duplicate=False)
            if p is target and n != f"{name}.weight"]


# --------------------------------------------------------------------- freezing and unloading


def adapter_layers(model: nn.Module, kind: type | None = None) -> dict[str, AdapterLayer]:
    """``{dotted name: layer}`` for every adapter layer in ``model`` (of type ``kind`` if given)."""
    kind = kind or AdapterLayer
    return {n: m for n, m in model.named_modules() if isinstance(m, kind)}


def mark_only_adapters_trainable(model: nn.Module, also: Iterable[nn.Parameter] = ()) -> None:
    """Freeze every parameter of ``model`` except the adapters' (and those in ``also``)."""
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in adapter_layers(model).values():
        for p in layer.adapter_parameters():
            p.requires_grad_(True)
    for p in also:
        p.requires_grad_(True)


def trainable_summary(model: nn.Module) -> dict[str, float]:
    """``{"trainable": n, "total": N, "fraction": n / N}``, distinct parameters counted once
    (:func:`roadmap_lib.measure.count_parameters`)."""
    trainable = count_parameters(model, trainable_only=True)
    total = count_parameters(model)
    return {"trainable": trainable, "total": total, "fraction": trainable / max(total, 1)}


def merge_adapters(model: nn.Module) -> None:
    """Merge every mergeable adapter layer (LoRA, DoRA, IA³) into its base weight."""
    layers = adapter_layers(model)
    if not layers:
        raise ValueError(f"model: {type(model).__name__} has no adapter layers to merge")
    for layer in layers.values():
        layer.merge()


def unmerge_adapters(model: nn.Module) -> None:
    """Undo :func:`merge_adapters`."""
    layers = adapter_layers(model)
    if not layers:
        raise ValueError(f"model: {type(model).__name__} has no adapter layers to unmerge")
    for layer in layers.values():
        layer.unmerge()


def unload(model: nn.Module, *, merge: bool = True) -> nn.Module:
    """Put every wrapped layer back in place (merged into its weight first when ``merge``; the
    adapter is dropped otherwise) and make the model's parameters trainable again. Returns it."""
    for name, layer in reversed(adapter_layers(model).items()):  # inner layers first
        if merge and not layer.merged:
            layer.merge()
        elif not merge and layer.merged:
            layer.unmerge()
        replace_module(model, name, layer.base)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


__all__ = [
    "AdapterLayer",
    "adapter_layers",
    "dense_weight",
    "find_modules",
    "is_conv1d",
    "is_linear_like",
    "linear_features",
    "mark_only_adapters_trainable",
    "merge_adapters",
    "name_matches",
    "replace_module",
    "set_dense_weight",
    "shared_weight",
    "trainable_summary",
    "unload",
    "unmerge_adapters",
]
