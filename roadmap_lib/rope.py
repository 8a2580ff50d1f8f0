"""Rotary position embedding (RoPE), in both conventions, with context-extension scaling.

RoPE (Su et al., RoFormer) rotates each pair of query/key features by an angle proportional to the
token's position: pair ``i`` at position ``m`` turns by ``m·θ_i`` with ``θ_i = base^(-2i/d)``.
Because a rotation by ``m·θ`` followed by a dot product with a rotation by ``n·θ`` depends only on
``(m - n)·θ``, the attention score ``q_m · k_n`` sees only the relative position.

Two layouts of the pairs are in use, and they give identical models up to a fixed permutation of
the q/k projection rows:

- ``"interleaved"`` (RoFormer, GPT-J, Meta's original LLaMA code): pairs are ``(x[2i], x[2i+1])``;
- ``"half"`` (GPT-NeoX, Hugging Face Llama): pairs are ``(x[i], x[i + d/2])``.

Context extension (evaluating past the training length) changes the angles:

- ``"linear"``: position interpolation (Chen et al. 2023): positions are divided by ``factor``;
- ``"ntk"``: NTK-aware scaling: the base grows to ``base · factor^(d/(d-2))``, which stretches the
  slow (low-frequency) pairs about ``factor`` times and leaves the fast ones almost untouched;
- ``"dynamic_ntk"``: the NTK base chosen from the current length (as transformers' "dynamic");
- ``"llama3"``: Llama 3's per-frequency blend of interpolated and original frequencies;
- ``"yarn"``: YaRN (Peng et al. 2023): pairs that turn fewer than ``beta_slow`` times over the
  trained length are interpolated, pairs that turn more than ``beta_fast`` times are kept, a linear
  ramp in between; and cos/sin are multiplied by ``0.1·ln(factor) + 1`` ("attention temperature").

Shapes: ``x`` is ``(batch, heads, seq, dim)``; ``cos``/``sin`` are ``(seq, dim)`` or
``(batch, seq, dim)`` and broadcast over heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

CONVENTIONS = ("half", "interleaved")
SCALINGS = (None, "linear", "ntk", "dynamic_ntk", "llama3", "yarn")


def _check_dim(dim: object, name: str = "dim") -> int:
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{name}: expected an int, got {type(dim).__name__}")
    if dim <= 0 or dim % 2:
        raise ValueError(
            f"{name}: RoPE rotates pairs of features, so expected a positive even number, got {dim}"
        )
    return dim


def _check_convention(convention: object) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")
    return convention  # type: ignore[return-value]


def rope_inv_freq(dim: int, base: float = 10000.0) -> torch.Tensor:
    """The ``dim/2`` rotation speeds ``θ_i = base^(-2i/dim)`` (radians per position), float32."""
    _check_dim(dim)
    if not base > 1:
        raise ValueError(f"base: expected a number > 1, got {base}")
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def ntk_scaled_base(base: float, dim: int, factor: float) -> float:
    """NTK-aware base: ``base · factor^(dim/(dim-2))``, so the slowest pair turns ``factor`` times slower."""
    _check_dim(dim)
    if dim < 4:
        raise ValueError(f"dim: NTK scaling needs dim >= 4, got {dim}")
    return base * factor ** (dim / (dim - 2))


def llama3_inv_freq(
    inv_freq: torch.Tensor,
    factor: float,
    original_max_position: int,
    low_freq_factor: float = 1.0,
    high_freq_factor: float = 4.0,
) -> torch.Tensor:
    """Llama 3 scaling: wavelengths longer than ``original_max_position / low_freq_factor`` are
    interpolated by ``factor``, those shorter than ``original_max_position / high_freq_factor`` are
    kept, and the ones between are blended linearly in ``original_max_position / wavelength``."""
    wavelength = 2 * math.pi / inv_freq
    smooth = (original_max_position / wavelength - low_freq_factor) / (
        high_freq_factor - low_freq_factor
    )
    smooth = smooth.clamp(0.0, 1.0)
    return (1 - smooth) * inv_freq / factor + smooth * inv_freq


def yarn_attention_factor(factor: float) -> float:
    """YaRN's cos/sin multiplier ``0.1·ln(factor) + 1`` (1 for ``factor <= 1``): it sharpens the
    softmax, which interpolation otherwise flattens."""
    return 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0


def yarn_inv_freq(
    dim: int,
    base: float,
    factor: float,
    original_max_position: int,
    beta_fast: float = 32.0,
    beta_slow: float = 1.0,
    truncate: bool = True,
) -> torch.Tensor:
    """YaRN's ``dim/2`` rotation speeds ("NTK-by-parts").

    Pair ``i`` completes ``original_max_position·θ_i / 2π`` turns over the trained length. Pairs
    with more than ``beta_fast`` turns keep ``θ_i`` (they never saw a new angle), pairs with fewer
    than ``beta_slow`` turns are interpolated to ``θ_i / factor``, and the ramp between is linear in
    the pair index (bounds floored/ceiled when ``truncate``, as in the reference code).
    """
    _check_dim(dim)
    if not original_max_position or original_max_position < 1:
        raise ValueError(f"original_max_position: expected the trained length >= 1, got {original_max_position}")

    def pair_with_turns(turns: float) -> float:  # the (fractional) pair index that makes `turns` turns
        return dim * math.log(original_max_position / (turns * 2 * math.pi)) / (2 * math.log(base))

    low, high = pair_with_turns(beta_fast), pair_with_turns(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # avoid dividing by zero, as the reference does
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    keep = 1 - ramp  # 1: keep the original speed, 0: interpolate
    inv_freq = rope_inv_freq(dim, base)
    return inv_freq / factor * (1 - keep) + inv_freq * keep


@dataclass
class RoPEConfig:
    dim: int  # rotated features per head (even)
    base: float = 10000.0
    convention: str = "half"  # "half" (GPT-NeoX/Llama) or "interleaved" (RoFormer/GPT-J)
    scaling: str | None = None  # None, "linear", "ntk", "dynamic_ntk", "llama3"
    factor: float = 1.0  # context-extension factor (new length / trained length)
    original_max_position: int | None = None  # trained length; needed by "dynamic_ntk" and "llama3"
    low_freq_factor: float = 1.0  # llama3 only
    high_freq_factor: float = 4.0  # llama3 only
    beta_fast: float = 32.0  # yarn only: pairs with more turns than this keep their speed
    beta_slow: float = 1.0  # yarn only: pairs with fewer turns than this are interpolated
    attention_factor: float | None = None  # yarn only: None -> 0.1·ln(factor) + 1

    def __post_init__(self) -> None:
        _check_dim(self.dim, "dim")
        _check_convention(self.convention)
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling: expected one of {SCALINGS}, got {self.scaling!r}")
        if not self.factor >= 1.0:
            raise ValueError(f"factor: expected a context-extension factor >= 1, got {self.factor}")
        if self.scaling in ("dynamic_ntk", "llama3", "yarn") and not self.original_max_position:
            raise ValueError(
                f"original_max_position: scaling={self.scaling!r} needs the trained length, got {self.original_max_position}"
            )


def rope_angles(positions: torch.Tensor, config: RoPEConfig) -> torch.Tensor:
    """Rotation angles ``(..., seq, dim/2)`` for integer (or fractional) ``positions`` ``(..., seq)``."""
    if not isinstance(positions, torch.Tensor):
        raise TypeError(
            f"positions: expected a tensor of positions, got {type(positions).__name__}"
        )
    if positions.ndim not in (1, 2):
        raise ValueError(
            f"positions: expected shape (seq,) or (batch, seq), got {tuple(positions.shape)}"
        )
    pos = positions.to(torch.float32)
    base, s, inv_freq = config.base, config.scaling, None
    if s == "ntk":
        base = ntk_scaled_base(base, config.dim, config.factor)
    elif s == "dynamic_ntk":
        seq_len = max(int(positions.max().item()) + 1, config.original_max_position)
        ratio = config.factor * seq_len / config.original_max_position - (config.factor - 1)
        base = base * ratio ** (config.dim / (config.dim - 2))
    if s == "yarn":
        inv_freq = yarn_inv_freq(config.dim, base, config.factor, config.original_max_position,
                                 config.beta_fast, config.beta_slow)
    else:
        inv_freq = rope_inv_freq(config.dim, base)
    if s == "linear":
        inv_freq = inv_freq / config.factor
    elif s == "llama3":
        inv_freq = llama3_inv_freq(
            inv_freq,
            config.factor,
            config.original_max_position,
            config.low_freq_factor,
            config.high_freq_factor,
        )
    return pos[..., None] * inv_freq.to(positions.device)


def rope_cos_sin(positions: torch.Tensor, config: RoPEConfig, dtype: torch.dtype = torch.float32):
    """``(cos, sin)``, each ``(..., seq, dim)``, laid out for ``config.convention``.

    With ``scaling="yarn"`` both are multiplied by the attention factor (as transformers does), so
    every q·k score grows by its square."""
    angles = rope_angles(positions, config)
    if config.convention == "half":
        angles = torch.cat((angles, angles), dim=-1)
    else:
        angles = angles.repeat_interleave(2, dim=-1)
    cos, sin = angles.cos(), angles.sin()
    if config.scaling == "yarn":
        a = config.attention_factor
        a = yarn_attention_factor(config.factor) if a is None else a
        cos, sin = cos * a, sin * a
    return cos.to(dtype), sin.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotate_interleaved(x: torch.Tensor) -> torch.Tensor:
    """``(a, b) -> (-b, a)`` on each adjacent pair of the last dimension."""
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((-b, a), dim=-1).flatten(-2)


def apply_rope(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, convention: str = "half"
) -> torch.Tensor:
    """Rotate ``x`` ``(batch, heads, seq, dim)`` by ``cos``/``sin`` ``(seq, dim)`` or ``(batch, seq, dim)``.

    If ``cos`` is narrower than ``x`` (partial rotary), only the first ``cos.shape[-1]`` features turn.
    """
    _check_convention(convention)
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: expected shape (batch, heads, seq, dim), got {got}")
    if cos.shape != sin.shape:
        raise ValueError(
            f"sin: expected the shape of cos {tuple(cos.shape)}, got {tuple(sin.shape)}"
        )
    if cos.ndim not in (2, 3) or cos.shape[-2] != x.shape[-2]:
        raise ValueError(
            f"cos: expected shape (seq, rot_dim) or (batch, seq, rot_dim) with seq={x.shape[-2]}, got {tuple(cos.shape)}"
        )
    rot = cos.shape[-1]
    if rot % 2 or rot > x.shape[-1]:
        raise ValueError(f"cos: rotary dim must be even and <= head dim {x.shape[-1]}, got {rot}")
    if cos.ndim == 3:
        cos, sin = cos[:, None], sin[:, None]
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    turn = rotate_half if convention == "half" else rotate_interleaved
    out = x_rot * cos + turn(x_rot) * sin
    return torch.cat((out, x_pass), dim=-1) if x_pass.shape[-1] else out


def interleaved_to_half_permutation(dim: int) -> torch.Tensor:
    """Index ``p`` with ``x_half = x_interleaved[..., p]``: the even features first, then the odd ones.

    Pair ``(2i, 2i+1)`` of the interleaved layout becomes pair ``(i, i + dim/2)`` of the half layout, so
    ``apply_rope(x[..., p], convention="half") == apply_rope(x, convention="interleaved")[..., p]``.
    """
    _check_dim(dim)
    return torch.cat((torch.arange(0, dim, 2), torch.arange(1, dim, 2)))


def permute_qk_weight(weight: torch.Tensor, num_heads: int, to: str = "half") -> torch.Tensor:
    """Reorder the output rows of a q or k projection ``(num_heads·head_dim, in)`` head by head, so a
    model trained with one RoPE convention gives identical attention scores in the other
    (``to="half"``: interleaved -> half; ``to="interleaved"``: the inverse). Works for biases too."""
    _check_convention(to)
    if not isinstance(num_heads, int) or num_heads <= 0 or weight.shape[0] % num_heads:
        raise ValueError(
            f"num_heads: expected a positive divisor of weight.shape[0]={weight.shape[0]}, got {num_heads}"
        )
    head_dim = _check_dim(weight.shape[0] // num_heads, "weight (rows per head)")
    perm = interleaved_to_half_permutation(head_dim)
    if to == "interleaved":
        perm = torch.argsort(perm)
    w = weight.reshape(num_heads, head_dim, *weight.shape[1:])
    return w[:, perm].reshape(weight.shape)


class RotaryEmbedding(nn.Module):
    """Holds a :class:`RoPEConfig`; ``forward(q, k, positions)`` returns the rotated ``(q, k)``."""

    def __init__(self, config: RoPEConfig):
        super().__init__()
        self.config = config

    def cos_sin(self, positions: torch.Tensor, dtype: torch.dtype = torch.float32):
        return rope_cos_sin(positions, self.config, dtype)

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor | None = None):
        if positions is None:
            positions = torch.arange(q.shape[-2], device=q.device)
        cos, sin = self.cos_sin(positions, q.dtype)
        conv = self.config.convention
        return apply_rope(q, cos, sin, conv), apply_rope(k, cos, sin, conv)


__all__ = [
    "CONVENTIONS",
    "SCALINGS",
    "RoPEConfig",
    "RotaryEmbedding",
    "apply_rope",
    "interleaved_to_half_permutation",
    "llama3_inv_freq",
    "ntk_scaled_base",
    "permute_qk_weight",
    "rope_angles",
    "rope_cos_sin",
    "rope_inv_freq",
    "rotate_half",
    "rotate_interleaved",
    "yarn_attention_factor",
    "yarn_inv_freq",
]
