"""AWQ: activation-aware weight quantisation (Lin et al. 2023).

Not all weights matter alike: the input channels that carry large activations decide most of the
output. AWQ protects them without mixed precision by **scaling**: for any s > 0 per input channel,

    y = W x = (W · diag(s)) (diag(s)⁻¹ x),

so quantising W·diag(s) instead of W, and dividing the input by s, gives the same layer in exact
arithmetic, while the salient columns, multiplied by s > 1, are rounded with a smaller relative
error. The scales come from the activations alone, s = mean|x|^α per channel, and a grid search
over α ∈ [0, 1] keeps the one with the smallest output error on calibration inputs,

    || W x − Q(W·diag(s)) diag(s)⁻¹ x ||².
 α = 0 gives s = 1, plain round-to-nearest, so the search never does worse
than RTN on its own objective.

The division by s costs nothing at inference once it is **folded** into the operation that produces
x: a norm's weight and bias, or the output rows of a previous linear layer (:func:`fold_scales`).
Where no such operation exists (after a GELU), ``QuantizedLinear`` keeps 1/s as an input scale.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from roadmap_lib.quantization.rtn import (
    check_bits,
    check_positive_int,
    check_scheme,
    check_weight,
    fake_quantize,
    n_groups,
)


class AWQResult(NamedTuple):
    scales: torch.Tensor  # (in,) s: quantise W·diag(s), divide the input by s
    alpha: float  # the exponent the search kept
    errors: list[tuple[float, float]]  # (alpha, mean squared output error) for every grid point


def activation_scale(x: torch.Tensor) -> torch.Tensor:
    """mean |x| per input channel: x (..., in) -> (in,)."""
    return x.detach().abs().reshape(-1, x.shape[-1]).float().mean(dim=0)


def awq_search(w: torch.Tensor, x: torch.Tensor, bits: int = 4, scheme: str = "absmax",
               granularity: str | int = "channel", n_grid: int = 20) -> AWQResult:
    """Grid search of α ∈ {0, 1/n_grid, ..., 1} for the scales s = mean|x|^α of ``w`` (out, in).

    ``x`` (..., in): calibration inputs of the layer. Several layers that read the same input (q, k
    and v) share one s: pass their weights concatenated along the output dimension.
    """
    check_weight(w)
    check_bits(bits)
    check_scheme(scheme)
    n_groups(granularity, tuple(w.shape))
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.shape[-1:] != w.shape[1:]:
        got = f"{x.dtype}, shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: expected floating-point inputs (..., {w.shape[1]}), got {got}")
    check_positive_int(n_grid, "n_grid")
    x2 = x.detach().reshape(-1, x.shape[-1]).float()
    w32 = w.detach().float()
    y = x2 @ w32.t()
    act = activation_scale(x2)
    best, errors = None, []
    for k in range(n_grid + 1):
        alpha = k / n_grid
        s = act.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()  # centre on 1 (log scale); the function is unchanged
        w_hat = fake_quantize(w32 * s, bits, scheme, granularity) / s
        err = float(((x2 @ w_hat.t() - y) ** 2).mean())
        errors.append((alpha, err))
        if best is None or err < best[1]:
            best = (s, err, alpha)
    return AWQResult(best[0].to(w.dtype), best[2], errors)


@torch.no_grad()
def fold_scales(prev: nn.Module, linears: list[nn.Linear], scales: torch.Tensor) -> None:
    """Divide ``prev``'s output by ``scales`` and multiply the input columns of ``linears`` by them.

    ``prev``: a norm (a module with a ``weight`` and optional ``bias`` of shape (in,), as
    :class:`~roadmap_lib.layers.LayerNorm` and ``RMSNorm``) or an ``nn.Linear`` whose output rows
    feed ``linears`` (only valid when what sits between is linear per channel, such as the up
    projection of a gated feed-forward). The network computes the same function afterwards.
    """
    if not isinstance(linears, (list, tuple)) or not linears or not all(
            isinstance(m, nn.Linear) for m in linears):
        raise TypeError(f"linears: expected a non-empty list of nn.Linear, got {linears!r}")
    n = linears[0].in_features
    if not isinstance(scales, torch.Tensor) or scales.shape != (n,) or not bool((scales > 0).all()):
        got = tuple(scales.shape) if isinstance(scales, torch.Tensor) else type(scales).__name__
        raise ValueError(f"scales: expected positive scales of shape ({n},), got {got}")
    if any(m.in_features != n for m in linears):
        raise ValueError(f"linears: expected the same in_features={n}, "
                         f"got {[m.in_features for m in linears]}")
    weight = getattr(prev, "weight", None)
    if isinstance(prev, nn.Linear):
        if prev.out_features != n:
            raise ValueError(f"prev: expected out_features={n}, got {prev.out_features}")
        prev.weight.div_(scales.unsqueeze(1).to(prev.weight.dtype))
    elif isinstance(weight, torch.Tensor) and weight.shape == (n,):
        weight.div_(scales.to(weight.dtype))
    else:
        raise TypeError(f"prev: expected an nn.Linear or a norm with a weight of shape ({n},), "
                        f"got {type(prev).__name__}")
    if getattr(prev, "bias", None) is not None:
        prev.bias.div_(scales.to(prev.bias.dtype))
    for m in linears:
        m.weight.mul_(scales.unsqueeze(0).to(m.weight.dtype))


__all__ = ["AWQResult", "activation_scale", "awq_search", "fold_scales"]
