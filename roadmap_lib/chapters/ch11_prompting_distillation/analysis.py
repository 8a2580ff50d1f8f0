"""The chapter's small live measurements: the teacher's soft targets at several temperatures, the
gradient scale of the soft loss with and without T², and the per-method summary of the table."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from roadmap_lib.objectives import soft_target_loss


@torch.no_grad()
def soft_targets(logits: torch.Tensor, temperatures: Sequence[float], top: int = 8) -> dict:
    """The ``top`` most likely tokens of one logit vector ``(vocab,)`` (ranked at T = 1) and their
    probabilities at each temperature: ``{"ids": [...], "probs": {T: [...]}, "rest": {T: mass of
    the other tokens}, "entropy": {T: nats}}``."""
    if logits.dim() != 1:
        raise ValueError(f"logits: expected one vector (vocab,), got shape {tuple(logits.shape)}")
    if any(T <= 0 for T in temperatures):
        raise ValueError(f"temperatures: expected positive values, got {list(temperatures)}")
    if not 1 <= top <= logits.shape[0]:
        raise ValueError(f"top: expected an int in 1..{logits.shape[0]}, got {top!r}")
    ids = logits.topk(top).indices
    out = {"ids": ids.tolist(), "probs": {}, "rest": {}, "entropy": {}}
    for T in temperatures:
        p = (logits / T).softmax(-1)
        out["probs"][T] = p[ids].tolist()
        out["rest"][T] = float(1 - p[ids].sum())
        out["entropy"][T] = float(-(p * p.clamp_min(1e-30).log()).sum())
    return out


def gradient_norms(temperatures: Sequence[float], *, rows: int = 64, classes: int = 32,
                   seed: int = 0) -> dict[str, list[float]]:
    """Norm of the gradient with respect to the student's logits of the soft loss with the T²
    factor (``"scaled"``) and without (``"unscaled"``), on fixed random unit-scale logits."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(rows, classes, generator=g).requires_grad_()
    t = torch.randn(rows, classes, generator=g)
    out = {"scaled": [], "unscaled": []}
    for T in temperatures:
        (grad,) = torch.autograd.grad(soft_target_loss(s, t, T), s)
        out["scaled"].append(float(grad.norm()))
        out["unscaled"].append(float(grad.norm()) / (T * T))
    return out


__all__ = ["gradient_norms", "soft_targets"]
