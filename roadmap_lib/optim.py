"""Optimisers and learning-rate schedules, written out.

``AdamW`` (Loshchilov & Hutter, decoupled weight decay) is a ``torch.optim.Optimizer`` subclass so
that it plugs into anything that expects one, but its ``step`` spells the update out line by line.
It performs the same floating-point operations in the same order as PyTorch's single-tensor
``torch.optim.AdamW``, so the two agree bit for bit (``tests/test_optim.py``).

The schedule is linear warmup then a half cosine down to a floor, the shape GPT-style training uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class AdamW(torch.optim.Optimizer):
    r"""Adam with decoupled weight decay.

    For each parameter :math:`\theta` with gradient :math:`g` at step :math:`t`:

    .. math::
        \theta &\leftarrow \theta\,(1 - \eta\lambda) \\
        m &\leftarrow \beta_1 m + (1-\beta_1) g \qquad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
        \theta &\leftarrow \theta - \frac{\eta}{1-\beta_1^t}\,
            \frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}

    Param groups may override ``lr``, ``betas``, ``eps`` and ``weight_decay`` (e.g. no decay on
    biases and norms).
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        if not (isinstance(lr, (int, float)) and lr >= 0):
            raise ValueError(f"lr: expected a float >= 0, got {lr!r}")
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas: expected two floats in [0, 1), got {betas!r}")
        if not eps >= 0:
            raise ValueError(f"eps: expected a float >= 0, got {eps!r}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay: expected a float >= 0, got {weight_decay!r}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2) = group["lr"], group["betas"]
            eps, weight_decay = group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise TypeError("AdamW does not support sparse gradients")
                state = self.state[p]
                if not state:  # lazily created, like PyTorch's, so state_dicts match
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                grad, m, v = p.grad, state["exp_avg"], state["exp_avg_sq"]

                state["step"] += 1
                t = state["step"].item()
                p.mul_(1 - lr * weight_decay)  # decoupled weight decay
                m.lerp_(grad, 1 - beta1)  # m = beta1 m + (1 - beta1) g
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)  # v = beta2 v + (1 - beta2) g²
                bias_correction1 = 1 - beta1**t
                bias_correction2 = 1 - beta2**t
                step_size = lr / bias_correction1
                denom = (v.sqrt() / bias_correction2**0.5).add_(eps)
                p.addcdiv_(m, denom, value=-step_size)
        return loss


def param_groups_with_decay(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two param groups: matrices (embeddings, linear weights) decay, vectors (biases, norms) don't.

    The split nanoGPT and most LM recipes use; tied parameters appear once.
    """
    decay, no_decay = [], []
    for p in model.parameters():  # .parameters() already deduplicates tied weights
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def clip_grad_norm(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale all gradients so that their joint L2 norm is at most ``max_norm``; return the norm.

    Same result as ``torch.nn.utils.clip_grad_norm_`` (norm_type 2).
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm: expected a float > 0, got {max_norm!r}")
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale)
    return total


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at ``step``: linear warmup from 0, then half a cosine to ``min_ratio``.

    Multiply each param group's peak learning rate by it. ``min_ratio`` is the floor as a fraction
    of the peak (e.g. 0.1 for 1e-3 → 1e-4). After ``total_steps`` it stays at the floor. Same
    values as transformers' ``get_cosine_with_min_lr_schedule_with_warmup``.
    """
    if warmup_steps < 0 or total_steps <= 0 or warmup_steps > total_steps:
        raise ValueError(
            f"warmup_steps/total_steps: expected 0 <= warmup_steps <= total_steps and total_steps > 0, "
            f"got warmup_steps={warmup_steps}, total_steps={total_steps}"
        )
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio: expected a float in [0, 1], got {min_ratio!r}")
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return cosine * (1.0 - min_ratio) + min_ratio


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Set every group's ``lr`` to its peak (``initial_lr``, recorded on first call) times ``factor``."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"] * factor


__all__ = ["AdamW", "clip_grad_norm", "param_groups_with_decay", "set_lr", "warmup_cosine"]
