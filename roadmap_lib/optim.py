"""Optimisers and learning-rate schedules, written out.

``AdamW`` (Loshchilov & Hutter, decoupled weight decay) is a ``torch.optim.Optimizer`` subclass so
that it plugs into anything that expects one, but its ``step`` spells the update out line by line.
It performs the same floating-point operations in the same order as PyTorch's single-tensor
``torch.optim.AdamW``, so the two agree bit for bit (``tests/test_optim.py``).

``AdamW8bit`` keeps Adam's two moments in 8 bits (Dettmers et al. 2022, "8-bit Optimizers via
Block-wise Quantization"): each moment is cut into blocks of 256 values, each block stores its
absmax in float32 and every value as the index of the nearest entry of a 256-value *dynamic* code
book (signed for the first moment, unsigned for the second), 2 × (1 + 4/256) bytes per parameter
instead of 8. Every step dequantises, does the float32 Adam update, and quantises again. Small
tensors (fewer than ``min_8bit_size`` values, 4096 as in bitsandbytes) keep float32 moments.

``Adafactor`` (Shazeer & Stern 2018) keeps, for a matrix, only the row and column means of the
squared gradients instead of a full second moment (``n + m`` numbers for an ``n × m`` matrix, not
``n m``), no first moment by default, a step size *relative* to the parameter's RMS and a clip on
the RMS of each update. It does the same operations as ``transformers.optimization.Adafactor``
(``tests/test_optim_adafactor.py``).

The schedule is linear warmup then a half cosine down to a floor, the shape GPT-style training uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from roadmap_lib.quantization.nf4 import dynamic_code_book, nearest_code


def _check_adam_args(lr, betas, eps, weight_decay) -> None:
    if not (isinstance(lr, (int, float)) and lr >= 0):
        raise ValueError(f"lr: expected a float >= 0, got {lr!r}")
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"betas: expected two floats in [0, 1), got {betas!r}")
    if not eps >= 0:
        raise ValueError(f"eps: expected a float >= 0, got {eps!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay: expected a float >= 0, got {weight_decay!r}")


def _step_each(optimizer: torch.optim.Optimizer, closure=None):
    """The shared ``step``: evaluate ``closure``, then ``optimizer._update(p, state, group)`` for
    every parameter that has a (dense) gradient."""
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise TypeError(f"{type(optimizer).__name__} does not support sparse gradients")
            optimizer._update(p, optimizer.state[p], group)
    return loss


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
        _check_adam_args(lr, betas, eps, weight_decay)
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        return _step_each(self, closure)

    def _update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        """One AdamW step of parameter ``p`` with its (lazily created) ``state``."""
        lr, (beta1, beta2) = group["lr"], group["betas"]
        eps, weight_decay = group["eps"], group["weight_decay"]
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


def unsigned_dynamic_code_book() -> torch.Tensor:
    """bitsandbytes' *unsigned* 8-bit dynamic code (256 values in [0, 1], ascending, float32),
    for non-negative values such as Adam's second moment: the signed code's layout without the sign,
    so every decade 10^(i-6), i = 0..6, gets twice as many fractions (2^(i+1) bin midpoints in
    (0.1, 1)); plus 0 and 1. The signed code is :func:`roadmap_lib.quantization.dynamic_code_book`.
    """
    values = [torch.tensor([0.0, 1.0])]
    for i in range(7):
        edges = torch.linspace(0.1, 1.0, 2 ** (i + 1) + 1)
        values.append((10.0 ** (i - 6)) * ((edges[:-1] + edges[1:]) / 2))
    return torch.cat(values).sort().values


#: the block of values that share one absmax in the 8-bit optimiser states (bitsandbytes' CPU path)
STATE_BLOCK = 256


def quantize_blockwise(x: torch.Tensor, code_book: torch.Tensor,
                       block_size: int = STATE_BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (any shape) -> ``(codes, absmax)``: ``x`` read flat in blocks of ``block_size``, each
    block divided by its absmax (float32, (n_blocks,)) and stored as the index (uint8, shape of
    ``x``) of the nearest value of ``code_book``."""
    flat = x.detach().reshape(-1).float()
    pad = -flat.numel() % block_size
    blocks = torch.nn.functional.pad(flat, (0, pad)).reshape(-1, block_size)
    absmax = blocks.abs().amax(dim=1)
    normed = blocks / torch.where(absmax > 0, absmax, torch.ones_like(absmax)).unsqueeze(1)
    codes = nearest_code(normed.reshape(-1)[: flat.numel()], code_book)
    return codes.reshape(x.shape), absmax


def dequantize_blockwise(codes: torch.Tensor, absmax: torch.Tensor, code_book: torch.Tensor,
                         block_size: int = STATE_BLOCK) -> torch.Tensor:
    """Inverse of :func:`quantize_blockwise`: float32 values, shape of ``codes``."""
    values = code_book[codes.reshape(-1).long()]
    pad = -values.numel() % block_size
    blocks = torch.nn.functional.pad(values, (0, pad)).reshape(-1, block_size)
    return (blocks * absmax.unsqueeze(1)).reshape(-1)[: codes.numel()].reshape(codes.shape)


class AdamW8bit(AdamW):
    """:class:`AdamW` with its moments stored block-wise in 8 bits (see the module docstring).

    Same arguments as :class:`AdamW`, plus ``min_8bit_size``: tensors with fewer values keep
    float32 moments (their state is too small to matter, and an absmax per 256 values would cost
    relatively more). State per parameter: ``exp_avg`` / ``exp_avg_sq`` (uint8 codes, shape of the
    parameter) and ``exp_avg_absmax`` / ``exp_avg_sq_absmax`` (float32, one per block), or float32
    ``exp_avg`` / ``exp_avg_sq`` for small tensors. :func:`optimizer_state_nbytes` counts them.
    The update is computed in float32 in bitsandbytes' order (``m·β₁ + (1-β₁)g``, not ``lerp``).
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, min_8bit_size: int = 4096) -> None:
        if not isinstance(min_8bit_size, int) or isinstance(min_8bit_size, bool) or min_8bit_size < 1:
            raise ValueError(f"min_8bit_size: expected an int >= 1, got {min_8bit_size!r}")
        super().__init__(params, lr, betas, eps, weight_decay)
        self.min_8bit_size = min_8bit_size
        self.signed_code, self.unsigned_code = dynamic_code_book(), unsigned_dynamic_code_book()

    def _update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        lr, (beta1, beta2) = group["lr"], group["betas"]
        eps, weight_decay = group["eps"], group["weight_decay"]
        quantized = p.numel() >= self.min_8bit_size
        if not state:
            state["step"] = torch.tensor(0.0)
            if quantized:
                n_blocks = -(-p.numel() // STATE_BLOCK)
                for name in ("exp_avg", "exp_avg_sq"):
                    state[name] = torch.zeros_like(p, dtype=torch.uint8)
                    state[name + "_absmax"] = torch.zeros(n_blocks)
                # code 0 of the unsigned book is 0.0; the signed book's zero sits mid-table
                state["exp_avg"].fill_(int((self.signed_code == 0).nonzero()))
            else:
                state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
        if quantized:
            m = dequantize_blockwise(state["exp_avg"], state["exp_avg_absmax"], self.signed_code)
            v = dequantize_blockwise(state["exp_avg_sq"], state["exp_avg_sq_absmax"], self.unsigned_code)
        else:
            m, v = state["exp_avg"], state["exp_avg_sq"]
        grad, weight = p.grad.float(), p.float()
        state["step"] += 1
        t = state["step"].item()
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
        weight.mul_(1 - lr * weight_decay)
        weight.addcdiv_(m, denom, value=-lr / (1 - beta1**t))
        p.copy_(weight)
        if quantized:
            state["exp_avg"], state["exp_avg_absmax"] = quantize_blockwise(m, self.signed_code)
            state["exp_avg_sq"], state["exp_avg_sq_absmax"] = quantize_blockwise(v, self.unsigned_code)


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.norm(2) / (x.numel() ** 0.5)


class Adafactor(torch.optim.Optimizer):
    r"""Adafactor: factored second moments, relative step sizes, update clipping.

    For a parameter :math:`W` with gradient :math:`G` at step :math:`t` (Shazeer & Stern 2018):

    .. math::
        \hat\beta_{2t} &= 1 - t^{c} \quad (c = \text{decay\_rate} = -0.8) \\
        R &\leftarrow \hat\beta_{2t} R + (1-\hat\beta_{2t})\,\mathrm{mean}_{cols}(G^2 + \epsilon_1)
        \qquad C \leftarrow \hat\beta_{2t} C + (1-\hat\beta_{2t})\,\mathrm{mean}_{rows}(G^2 + \epsilon_1) \\
        \hat V &= R C^\top / \mathrm{mean}(R) \qquad U = G / \sqrt{\hat V} \qquad
        U \leftarrow U / \max(1, \mathrm{RMS}(U) / d) \\
        \rho_t &= \min(10^{-2}, 1/\sqrt t) \;\text{(relative\_step)} \qquad
        \alpha_t = \max(\epsilon_2, \mathrm{RMS}(W))\,\rho_t \;\text{(scale\_parameter)} \\
        W &\leftarrow W - \alpha_t U

    Tensors with fewer than 2 dimensions keep a full second moment. ``beta1`` (None by default)
    adds a first moment of the clipped, scaled update; ``weight_decay`` is multiplied by the step
    size. With ``relative_step=False`` give ``lr``; ``warmup_init`` makes :math:`\rho_t =
    \min(10^{-6} t, 1/\sqrt t)`. Argument names and defaults are those of transformers.
    """

    def __init__(self, params: Iterable, lr: float | None = None, eps: tuple[float, float] = (1e-30, 1e-3),
                 clip_threshold: float = 1.0, decay_rate: float = -0.8, beta1: float | None = None,
                 weight_decay: float = 0.0, scale_parameter: bool = True, relative_step: bool = True,
                 warmup_init: bool = False) -> None:
        if relative_step and lr is not None:
            raise ValueError(f"lr: expected None with relative_step=True (the step size is computed), got {lr!r}")
        if not relative_step and not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr: expected a float > 0 with relative_step=False, got {lr!r}")
        if warmup_init and not relative_step:
            raise ValueError("warmup_init: expected False with relative_step=False, got True")
        if beta1 is not None and not 0.0 <= beta1 < 1.0:
            raise ValueError(f"beta1: expected None or a float in [0, 1), got {beta1!r}")
        if not clip_threshold > 0:
            raise ValueError(f"clip_threshold: expected a float > 0, got {clip_threshold!r}")
        if not decay_rate < 0:
            raise ValueError(f"decay_rate: expected a float < 0 (beta2_t = 1 - t**decay_rate), got {decay_rate!r}")
        defaults = {"lr": lr, "eps": tuple(eps), "clip_threshold": clip_threshold, "decay_rate": decay_rate,
                    "beta1": beta1, "weight_decay": weight_decay, "scale_parameter": scale_parameter,
                    "relative_step": relative_step, "warmup_init": warmup_init}
        super().__init__(params, defaults)

    @staticmethod
    def step_size(group: dict, step: int, param_rms: torch.Tensor | float) -> torch.Tensor | float:
        """alpha_t: the relative step rho_t (or ``lr``), times max(eps_2, RMS(W)) if ``scale_parameter``."""
        rho = group["lr"]
        if group["relative_step"]:
            rho = min(1e-6 * step if group["warmup_init"] else 1e-2, 1.0 / math.sqrt(step))
        return max(group["eps"][1], param_rms) * rho if group["scale_parameter"] else rho

    @torch.no_grad()
    def step(self, closure=None):
        return _step_each(self, closure)

    def _update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        grad = p.grad.float()
        factored = grad.dim() >= 2
        if not state:
            state["step"] = 0
            if group["beta1"] is not None:
                state["exp_avg"] = torch.zeros_like(grad)
            if factored:  # R: one number per row; C: one per column
                state["exp_avg_sq_row"] = torch.zeros(grad.shape[:-1])
                state["exp_avg_sq_col"] = torch.zeros(grad.shape[:-2] + grad.shape[-1:])
            else:
                state["exp_avg_sq"] = torch.zeros_like(grad)
        weight = p.float() if p.dtype != torch.float32 else p
        state["step"] += 1
        t = state["step"]
        lr = self.step_size(group, t, _rms(weight))
        beta2t = 1.0 - t ** group["decay_rate"]
        sq = grad**2 + group["eps"][0]
        if factored:
            row, col = state["exp_avg_sq_row"], state["exp_avg_sq_col"]
            row.mul_(beta2t).add_(sq.mean(dim=-1), alpha=1.0 - beta2t)
            col.mul_(beta2t).add_(sq.mean(dim=-2), alpha=1.0 - beta2t)
            # 1/sqrt(V_hat) = 1/sqrt(R_i C_j / mean(R)), computed as two rank-1 factors
            r_factor = (row / row.mean(dim=-1, keepdim=True)).rsqrt_().unsqueeze(-1)
            update = (r_factor * col.unsqueeze(-2).rsqrt()).mul_(grad)
        else:
            v = state["exp_avg_sq"]
            v.mul_(beta2t).add_(sq, alpha=1.0 - beta2t)
            update = v.rsqrt().mul_(grad)
        update.div_((_rms(update) / group["clip_threshold"]).clamp_(min=1.0))  # update clipping
        update.mul_(lr)
        if group["beta1"] is not None:
            state["exp_avg"].mul_(group["beta1"]).add_(update, alpha=1 - group["beta1"])
            update = state["exp_avg"]
        if group["weight_decay"] != 0:
            weight.add_(weight, alpha=-group["weight_decay"] * lr)
        weight.add_(-update)
        if weight is not p:
            p.copy_(weight)


def optimizer_state_nbytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in ``optimizer.state`` (moments, codes, absmax, step counters)."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
    return sum(t.untyped_storage().nbytes() for s in optimizer.state.values() for t in s.values()
               if isinstance(t, torch.Tensor))


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


__all__ = ["STATE_BLOCK", "Adafactor", "AdamW", "AdamW8bit", "clip_grad_norm", "dequantize_blockwise",
           "optimizer_state_nbytes", "param_groups_with_decay", "quantize_blockwise", "set_lr",
           "unsigned_dynamic_code_book", "warmup_cosine"]
