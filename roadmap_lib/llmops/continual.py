"""Continual learning (chapter 17): fine-tune on a new domain without forgetting the old one.

Fine-tuning every weight on new data moves the weights wherever the new loss wants them, and the old
domain's loss climbs: *catastrophic forgetting* (McCloskey and Cohen 1989). Two cheap mitigations:

- **replay** (:func:`replay_batches`): a fixed fraction of every training batch is old-domain data
  (Rolnick et al. 2019 replay from a buffer; here the buffer is the old corpus itself);
- **L2 to the initial weights** (:func:`l2_to_init`): add (λ/2) Σ (θ − θ₀)² to the loss, pulling
  every weight back toward where fine-tuning started;
- **EWC** (:func:`ewc`, Kirkpatrick et al. 2017): the same pull with each term weighted by how much
  the old task's loss depends on that weight, the diagonal of its Fisher information
  (:func:`diagonal_fisher`): (λ/2) Σ F_i (θ_i − θ₀_i)². L2 to init is EWC with every F_i = 1.

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


def diagonal_fisher(model: nn.Module, get_batch: GetBatch, loss_fn: Callable[..., torch.Tensor], *,
                    batches: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """The diagonal of the old task's empirical Fisher information, one tensor per trainable
    parameter (in ``model.parameters()`` order): the mean over ``batches`` training batches of the
    squared gradient of the batch's mean loss. (Squaring batch gradients rather than per-example
    ones is a common, cheaper approximation; it is smaller by roughly the batch size, which the
    strength λ absorbs.) The model is evaluated in eval mode and its gradients are left cleared."""
    if not isinstance(batches, int) or batches < 1:
        raise ValueError(f"batches: expected an int >= 1, got {batches!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model: it has no trainable parameters")
    fisher = [torch.zeros_like(p) for p in params]
    was_training = model.training
    model.eval()
    try:
        for _ in range(batches):
            x, y = get_batch("train", generator)
            model.zero_grad(set_to_none=True)
            loss_fn(model, x, y).backward()
            for f, p in zip(fisher, params):
                if p.grad is not None:
                    f += p.grad.detach() ** 2
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return [f / batches for f in fisher]


def ewc(loss_fn: Callable[..., torch.Tensor], model: nn.Module, fisher: list[torch.Tensor], strength: float):
    """``loss_fn`` plus (strength / 2) · Σ F · (θ − θ₀)² over the trainable parameters, θ₀ being
    their values now (copied) and ``fisher`` the weights from :func:`diagonal_fisher`."""
    if not strength >= 0:
        raise ValueError(f"strength: expected a number >= 0, got {strength!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if len(fisher) != len(params) or any(f.shape != p.shape for f, p in zip(fisher, params)):
        raise ValueError(f"fisher: expected one tensor per trainable parameter with its shape "
                         f"({len(params)} parameters), got {len(fisher)} tensors")
    anchors = [(p, p.detach().clone(), f.detach()) for p, f in zip(params, fisher)]

    def loss(m, x, y):
        penalty = sum((f * (p - p0) ** 2).sum() for p, p0, f in anchors)
        return loss_fn(m, x, y) + 0.5 * strength * penalty

    return loss


__all__ = ["diagonal_fisher", "ewc", "l2_to_init", "replay_batches"]
