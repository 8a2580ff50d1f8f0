"""Continual learning (chapter 17): fine-tune on a new domain without forgetting the old one.

Fine-tuning every weight on new data moves the weights wherever the new loss wants them, and the old
domain's loss climbs: *catastrophic forgetting* (McCloskey and Cohen 1989). Two cheap mitigations:

- **replay** (:func:`replay_batches`): a fixed fraction of every training batch is old-domain data
  (Rolnick et al. 2019 replay from a buffer; here the buffer is the old corpus itself);
- **L2 to the initial weights** (:func:`l2_to_init`): add (λ/2) Σ (θ − θ₀)² to the loss, pulling
  every weight back toward where fine-tuning started. EWC (Kirkpatrick et al. 2017) weights each
  term by the Fisher information of the old task; this is its unweighted special case.

Both wrap what :func:`roadmap_lib.training.train` takes: a ``get_batch(split, generator)`` and a
``loss_fn(model, inputs, targets)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

GetBatch = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def replay_batches(new: GetBatch, old: GetBatch, fraction: float) -> GetBatch:
    """A ``get_batch(split, generator)`` whose batches are ``new``'s with their first
    ``round(fraction · batch)`` rows replaced by rows of an ``old`` batch drawn from the same
    generator. ``fraction=0`` returns ``new``'s batches unchanged (and draws nothing from ``old``),
    so the no-replay run sees exactly the batches of plain fine-tuning. Both sources must give
    batches of the same shape."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction: expected a share of the batch in [0, 1], got {fraction!r}")

    def get_batch(split: str, generator: torch.Generator | None = None):
        x, y = new(split, generator)
        k = round(fraction * x.shape[0])
        if k == 0:
            return x, y
        ox, oy = old(split, generator)
        if ox.shape != x.shape:
            raise ValueError(f"old: expected batches of shape {tuple(x.shape)} like new's, got {tuple(ox.shape)}")
        x, y = x.clone(), y.clone()
        x[:k], y[:k] = ox[:k], oy[:k]
        return x, y

    return get_batch


def l2_to_init(loss_fn: Callable[..., torch.Tensor], model: nn.Module, strength: float):
    """``loss_fn`` plus (strength / 2) · Σ ‖θ − θ₀‖² over the trainable parameters, θ₀ being their
    values now (copied). Its gradient adds strength · (θ − θ₀) to each parameter's."""
    if not strength >= 0:
        raise ValueError(f"strength: expected a number >= 0, got {strength!r}")
    anchors = [(p, p.detach().clone()) for p in model.parameters() if p.requires_grad]
    if not anchors:
        raise ValueError("model: it has no trainable parameters to anchor")

    def loss(m, x, y):
        penalty = sum(((p - p0) ** 2).sum() for p, p0 in anchors)
        return loss_fn(m, x, y) + 0.5 * strength * penalty

    return loss


__all__ = ["l2_to_init", "replay_batches"]
