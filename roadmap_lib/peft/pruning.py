"""Pruning: set weights to zero and keep the model working.

Three granularities, each returning **masks** ``{parameter name: bool tensor}`` (True = keep)
that :func:`apply_masks` multiplies in (call it again after each optimiser step to keep the zeros
while fine-tuning):

- **unstructured magnitude pruning** (Han et al. 2015): drop the weights with the smallest
  ``|w|``, over all targeted layers at once (``scope="global"``) or the same fraction in each
  (``"layer"``). Exactly ``round(sparsity · n)`` weights go.
- **structured pruning**: drop whole attention heads (the head's query rows and its columns of
  the output projection, so its contribution is exactly zero) or whole FFN neurons (a row of the
  up/gate projections and a column of the down-projection). Michel et al. (2019) score heads by
  a gradient-based importance; here the score is the simpler weight norm. Structured zeros can
  be cut out of the matrices to make the model smaller and faster; scattered ones cannot.
- **2:4 semi-structured sparsity** (NVIDIA Ampere's sparse tensor cores): in every group of 4
  consecutive inputs of a row keep the 2 largest ``|w|``: exactly 50 %, in a pattern hardware
  can skip.

:func:`sparsity` measures what is really zero, counting zeros, whatever produced them.
"""

from __future__ import annotations

import torch
from torch import nn

from roadmap_lib.attention import MultiHeadAttention
from roadmap_lib.layers import FeedForward
from roadmap_lib.peft._targets import (
    dense_weight,
    find_modules,
    is_conv1d,
    is_linear_like,
    shared_weight,
)

Masks = dict[str, torch.Tensor]


def _check_fraction(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name}: expected a fraction in [0, 1], got {value!r}")


def sparsity(obj) -> float:
    """Fraction of entries that are exactly zero: of a tensor, of a dict of tensors, or of the
    weights of a module's linear layers."""
    if isinstance(obj, torch.Tensor):
        tensors = [obj]
    elif isinstance(obj, dict):
        tensors = list(obj.values())
    elif isinstance(obj, nn.Module):
        tensors = [dense_weight(m) for m in obj.modules() if is_linear_like(m)]
    else:
        raise TypeError(f"obj: expected a tensor, a dict of tensors or a module, "
                        f"got {type(obj).__name__}")
    total = sum(t.numel() for t in tensors)
    if total == 0:
        raise ValueError("obj: has no entries to measure")
    return sum(int((t == 0).sum()) for t in tensors) / total


def _weights(model: nn.Module, targets) -> dict[str, torch.Tensor]:
    """``{parameter name: weight}`` of the targeted linear layers (default: every linear layer
    whose weight is not tied to another parameter, so a tied output head is left alone)."""
    if targets is None:
        names = [n for n, m in model.named_modules() if n and is_linear_like(m)
                 and not shared_weight(model, n)]
    else:
        names = find_modules(model, targets)
    if not names:
        raise ValueError(f"model: {type(model).__name__} has no linear layer to prune")
    return {f"{n}.weight": model.get_submodule(n).weight for n in names}


def _drop_smallest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean keep-mask with exactly ``k`` False entries at the smallest scores."""
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    if k > 0:
        keep[torch.topk(scores.flatten(), k, largest=False).indices] = False
    return keep.view(scores.shape)


def magnitude_masks(model: nn.Module, sparsity: float, *, targets=None,
                    scope: str = "global") -> Masks:
    """Keep-masks that drop the ``sparsity`` fraction of smallest-magnitude weights."""
    _check_fraction(sparsity, "sparsity")
    if scope not in ("global", "layer"):
        raise ValueError(f"scope: expected 'global' or 'layer', got {scope!r}")
    weights = _weights(model, targets)
    if scope == "layer":
        return {n: _drop_smallest(w.detach().abs(), round(sparsity * w.numel()))
                for n, w in weights.items()}
    flat = torch.cat([w.detach().abs().flatten() for w in weights.values()])
    keep = _drop_smallest(flat, round(sparsity * flat.numel()))
    sizes = [w.numel() for w in weights.values()]
    return {n: k.view(w.shape) for (n, w), k in zip(weights.items(), keep.split(sizes))}


def semi_structured_masks(model: nn.Module, n: int = 2, m: int = 4, *, targets=None) -> Masks:
    """Keep the ``n`` largest ``|w|`` in every group of ``m`` consecutive inputs (2:4 default)."""
    if not (isinstance(n, int) and isinstance(m, int) and 0 < n <= m):
        raise ValueError(f"n, m: expected ints with 0 < n <= m, got n={n!r}, m={m!r}")
    masks = {}
    for name, w in _weights(model, targets).items():
        conv1d = is_conv1d(model.get_submodule(name.rsplit(".", 1)[0]))
        dense = w.detach().T if conv1d else w.detach()  # (out, in): groups run along inputs
        out_f, in_f = dense.shape
        if in_f % m:
            raise ValueError(f"model: {name} has {in_f} inputs, expected a multiple of m={m}")
        groups = dense.abs().reshape(out_f, in_f // m, m)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(-1, groups.topk(n, dim=-1).indices, True)
        keep = keep.view(out_f, in_f)
        masks[name] = keep.T.contiguous() if conv1d else keep
    return masks


def _prune_rows(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    return _drop_smallest(scores, round(fraction * scores.numel()))


def head_masks(model: nn.Module, fraction: float) -> Masks:
    """Drop the ``fraction`` of attention heads in each of our :class:`MultiHeadAttention`
    layers whose output-projection columns have the smallest norm (their query rows and
    bias too). Keys and values are left alone: with grouped-query attention they are shared."""
    _check_fraction(fraction, "fraction")
    masks: Masks = {}
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, MultiHeadAttention)]
    if not layers:
        raise ValueError(f"model: {type(model).__name__} has no MultiHeadAttention layer")
    for name, attn in layers:
        c = attn.config
        o = attn.o_proj.weight.detach().view(c.d_model, c.n_heads, c.head_dim)
        keep = _prune_rows(o.pow(2).sum((0, 2)), fraction)  # (n_heads,)
        dims = keep.repeat_interleave(c.head_dim)  # (n_heads · head_dim,)
        masks[f"{name}.o_proj.weight"] = dims[None, :].expand_as(attn.o_proj.weight).clone()
        masks[f"{name}.q_proj.weight"] = dims[:, None].expand_as(attn.q_proj.weight).clone()
        if attn.q_proj.bias is not None:
            masks[f"{name}.q_proj.bias"] = dims.clone()
    return masks


def neuron_masks(model: nn.Module, fraction: float) -> Masks:
    """Drop the ``fraction`` of hidden neurons in each of our :class:`FeedForward` layers with
    the smallest ``‖up row‖ · ‖down column‖`` (times ``‖gate row‖`` when gated)."""
    _check_fraction(fraction, "fraction")
    masks: Masks = {}
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, FeedForward)]
    if not layers:
        raise ValueError(f"model: {type(model).__name__} has no FeedForward layer")
    for name, ffn in layers:
        score = ffn.up_proj.weight.detach().norm(dim=1) * ffn.down_proj.weight.detach().norm(dim=0)
        if ffn.gate_proj is not None:
            score = score * ffn.gate_proj.weight.detach().norm(dim=1)
        keep = _prune_rows(score, fraction)  # (d_ff,)
        for proj_name, proj in (("up_proj", ffn.up_proj), ("gate_proj", ffn.gate_proj)):
            if proj is None:
                continue
            masks[f"{name}.{proj_name}.weight"] = keep[:, None].expand_as(proj.weight).clone()
            if proj.bias is not None:
                masks[f"{name}.{proj_name}.bias"] = keep.clone()
        masks[f"{name}.down_proj.weight"] = keep[None, :].expand_as(ffn.down_proj.weight).clone()
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> nn.Module:
    """Zero the masked entries (``mask == False``) of the named parameters, in place."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise ValueError(f"masks: {name!r} is not a parameter of {type(model).__name__}")
        if mask.shape != params[name].shape or mask.dtype != torch.bool:
            raise ValueError(f"masks[{name!r}]: expected a bool tensor of shape "
                             f"{tuple(params[name].shape)}, got {mask.dtype} {tuple(mask.shape)}")
        params[name].mul_(mask)
    return model


__all__ = ["apply_masks", "head_masks", "magnitude_masks", "neuron_masks",
           "semi_structured_masks", "sparsity"]
