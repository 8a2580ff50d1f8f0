"""Input checks shared by the alignment modules: each error names the argument, what it got and
what was expected (DESIGN.md: "Public functions ... validate their inputs")."""

from __future__ import annotations

import torch


def shape_of(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def check_float(name: str, x, *, ndim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """A floating-point tensor, optionally of a given number of dimensions."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = f"{x.dtype} tensor" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{name}: expected a floating-point tensor, got {got}")
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if dims is not None and x.ndim not in dims:
        want = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{name}: expected a {want} tensor, got shape {shape_of(x)}")
    return x


def check_like(ref_name: str, ref: torch.Tensor, **others: torch.Tensor) -> None:
    """Every tensor in ``others`` is floating point and has ``ref``'s shape."""
    for name, x in others.items():
        check_float(name, x)
        if x.shape != ref.shape:
            raise ValueError(f"{name}: expected shape {shape_of(ref)} like {ref_name}, got {shape_of(x)}")


def check_mask(name: str, mask, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """A 0/1 mask of a given shape, bool or integer (not float: a float mask is usually a bug, a
    probability or a weight passed by mistake). Returns it as bool."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name}: expected a bool or integer tensor, got {type(mask).__name__}")
    if mask.is_floating_point() or mask.is_complex():
        raise TypeError(f"{name}: expected a bool or integer 0/1 tensor, got {mask.dtype}")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {shape_of(mask)}")
    if mask.dtype != torch.bool:
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError(f"{name}: expected only 0 and 1, got values {sorted(set(mask.unique().tolist()))}")
        mask = mask.bool()
    return mask


def check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name}: expected a number > 0, got {value!r}")
    return float(value)


def check_range(name: str, value, low: float, high: float, *, high_open: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"{name}: expected a number in [{low}, {high}{')' if high_open else ']'}, got {value!r}")
    return float(value)


def check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    """``"mean"``, ``"sum"`` or ``"none"`` (the per-example losses) over a 1-D tensor."""
    check_choice("reduction", reduction, ("mean", "sum", "none"))
    if reduction == "none":
        return losses
    return losses.mean() if reduction == "mean" else losses.sum()
