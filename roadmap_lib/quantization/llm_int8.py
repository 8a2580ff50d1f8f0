"""LLM.int8(): 8-bit matrix multiplication with mixed-precision decomposition (Dettmers et al. 2022).

``y = x Wᵀ`` with x (tokens, in) and W (out, in). **Vector-wise** quantisation gives every row of
x (a token) and every row of W (an output channel) its own absmax scale, so the int32 product of
the codes is rescaled by an outer product of scales:

    x ≈ diag(cₓ) Xq / 127,    W ≈ diag(c_w) Wq / 127,
    x Wᵀ ≈ diag(cₓ) (Xq Wqᵀ) diag(c_w) / 127²

Large transformers grow **outlier features**: a few hidden dimensions whose values reach 20-60
while the rest stay below 1. One such value inflates the absmax of its whole row and crushes every
other value of that token to a few codes. The **decomposition** keeps the input columns (features)
where any |x| reaches ``threshold`` (6 in the paper) in floating point, and multiplies only the
other columns in int8 (a real int8 GEMM: ``torch._int_mm``):

    x Wᵀ = x[:, O] W[:, O]ᵀ  (fp)  +  x[:, ¬O] W[:, ¬O]ᵀ  (int8, vector-wise)

The scales of the int8 part are taken over the regular columns only (bitsandbytes' row scales also
count the entries below the threshold in outlier columns; without outliers our codes are its codes,
bit for bit). ``threshold=None`` turns the decomposition off (everything in int8), to measure what
it buys.
"""

from __future__ import annotations

import torch

from roadmap_lib.quantization.rtn import check_weight


def vectorwise_quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``x`` (rows, cols) -> (int8 codes (rows, cols), float32 absmax (rows,)).

    codes = round(127 · x / absmax(row)); an all-zero row gets absmax 0 and codes 0.
    """
    if x.shape[1] == 0:  # every feature was an outlier
        absmax = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)
    else:
        absmax = x.detach().abs().amax(dim=1).float()
    inv = 127.0 / torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    return torch.round(x.float() * inv.unsqueeze(1)).to(torch.int8), absmax


def int8_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """int8 (m, k) times int8 (n, k) transposed -> exact int32 (m, n), with PyTorch's int8 GEMM."""
    for name, t in (("a", a), ("b", b)):
        if t.dtype != torch.int8 or t.ndim != 2:
            raise TypeError(f"{name}: expected a 2-D int8 tensor, "
                            f"got {t.dtype}, shape {tuple(t.shape)}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"b: expected {a.shape[1]} columns to match a's, "
                         f"got shape {tuple(b.shape)}")
    return torch._int_mm(a, b.t())


def outlier_columns(x: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """Bool mask (in_features,) of the input features where some |x| >= ``threshold``."""
    x2 = x.reshape(-1, x.shape[-1])
    if threshold is None:
        return torch.zeros(x2.shape[1], dtype=torch.bool, device=x.device)
    return (x2.abs() >= threshold).any(dim=0)


def llm_int8_linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None,
                    threshold: float | None = 6.0) -> torch.Tensor:
    """LLM.int8() ``x Wᵀ + bias``: x (..., in), w (out, in) -> (..., out), in x's dtype.

    ``threshold``: input features with some |x| >= threshold stay in floating point; ``None``
    quantises every feature (no decomposition).
    """
    check_weight(w)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x: expected a floating-point tensor, got {got}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"x: expected a last dimension of in_features={w.shape[1]}, "
                         f"got shape {tuple(x.shape)}")
    if threshold is not None and (not isinstance(threshold, (int, float))
                                  or isinstance(threshold, bool) or threshold <= 0):
        raise ValueError(f"threshold: expected a positive number or None, got {threshold!r}")
    x2 = x.reshape(-1, x.shape[-1])
    outliers = outlier_columns(x2, threshold)
    regular = ~outliers
    cx, sx = vectorwise_quantize(x2[:, regular])
    cw, sw = vectorwise_quantize(w[:, regular])
    y = int8_matmul(cx, cw).float() * (sx.unsqueeze(1) * sw.unsqueeze(0) / 127**2)
    if outliers.any():
        y = y + x2[:, outliers].float() @ w[:, outliers].float().t()
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype).reshape(*x.shape[:-1], w.shape[0])


__all__ = ["int8_matmul", "llm_int8_linear", "outlier_columns", "vectorwise_quantize"]
