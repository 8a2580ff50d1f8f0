"""The training loop every chapter uses: plain Python a reader can step through.

One optimiser step = ``grad_accum`` micro-batches (forward, loss / grad_accum, backward), then
gradient clipping, then the scheduled learning rate, then ``optimizer.step()``. Every
``eval_interval`` steps the validation loss is measured on fixed batches; with ``patience`` set,
training stops when it has not improved for that many evaluations. Each step appends a dict to
``log`` (what notebooks plot). A checkpoint holds the weights, the optimiser, the step, the log and
every random state, so a resumed run continues bit for bit like the uninterrupted one.

Batches come from a function ``get_batch(split, generator) -> (inputs, targets)`` that draws with
the ``torch.Generator`` it is given (the loop owns and checkpoints it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import load_training_state, save_training_state
from .objectives import lm_loss
from .optim import AdamW, clip_grad_norm, param_groups_with_decay, set_lr, warmup_cosine


@dataclass
class TrainConfig:
    max_steps: int = 1000
    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of lr
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float | None = 1.0
    grad_accum: int = 1
    eval_interval: int = 100
    eval_batches: int = 10
    patience: int | None = None  # evaluations without improvement before stopping early
    target_val_loss: float | None = None  # stop as soon as an evaluation reaches it
    seed: int = 0
    checkpoint_path: str | None = None
    checkpoint_interval: int | None = None  # steps; None = only at the end when a path is set
    progress: bool = True

    def __post_init__(self):
        for name in ("max_steps", "grad_accum", "eval_interval", "eval_batches"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if self.warmup_steps > self.max_steps:
            raise ValueError(
                f"warmup_steps: expected at most max_steps={self.max_steps}, got {self.warmup_steps}"
            )
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience: expected None or an int >= 1, got {self.patience!r}")


@dataclass
class TrainResult:
    log: list[dict] = field(default_factory=list)  # one dict per step, "val_loss" on eval steps
    step: int = 0
    best_val_loss: float = math.inf
    stopped_early: bool = False
    seconds: float = 0.0  # wall time of the loop, evaluations included
    eval_seconds: float = 0.0  # of which evaluating

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of one logged quantity, e.g. ``result.series("val_loss")``."""
        rows = [r for r in self.log if key in r]
        return [r["step"] for r in rows], [r[key] for r in rows]


@torch.no_grad()
def evaluate(model, get_batch, loss_fn=lm_loss, *, batches: int = 10, seed: int = 1234) -> float:
    """Mean loss over ``batches`` validation batches drawn with a fixed seed (same batches each call)."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    losses = [loss_fn(model, *get_batch("val", g)).item() for _ in range(batches)]
    model.train(was_training)
    return sum(losses) / len(losses)


def train(
    model: torch.nn.Module,
    get_batch: Callable[[str, torch.Generator], tuple[torch.Tensor, torch.Tensor]],
    config: TrainConfig,
    *,
    loss_fn: Callable[..., torch.Tensor] = lm_loss,
    optimizer: torch.optim.Optimizer | None = None,
    resume_from: str | Path | None = None,
    stop_at: int | None = None,
) -> TrainResult:
    """Train ``model`` for ``config.max_steps`` optimiser steps; return the log and summary.

    ``optimizer`` defaults to our :class:`~roadmap_lib.optim.AdamW` with weight decay on matrices
    only. ``resume_from`` continues from a checkpoint written by an earlier call. ``stop_at``
    interrupts after that many steps (saving a checkpoint if a path is set), to demonstrate resuming.
    """
    if optimizer is None:
        optimizer = AdamW(param_groups_with_decay(model, config.weight_decay), lr=config.lr,
                          betas=config.betas)
    data_gen = torch.Generator().manual_seed(config.seed)
    result = TrainResult()
    bad_evals, step = 0, 0
    if resume_from is not None:
        step, info = load_training_state(resume_from, model, optimizer, generators={"data": data_gen})
        result.log, result.best_val_loss = info["log"], info["best_val_loss"]
        bad_evals = info["bad_evals"]
    else:
        torch.manual_seed(config.seed)  # dropout masks
    last = min(config.max_steps, stop_at) if stop_at is not None else config.max_steps

    def checkpoint(at_step: int) -> None:
        if config.checkpoint_path:
            info = {"log": result.log, "best_val_loss": result.best_val_loss,
                    "bad_evals": bad_evals, "config": asdict(config)}
            save_training_state(config.checkpoint_path, model, optimizer, step=at_step,
                                generators={"data": data_gen}, info=info)

    model.train()
    start = time.perf_counter()
    bar = tqdm(total=last, initial=step, desc="train", disable=not config.progress, leave=False)
    while step < last:
        lr_factor = warmup_cosine(step, warmup_steps=config.warmup_steps,
                                  total_steps=config.max_steps, min_ratio=config.min_lr_ratio)
        set_lr(optimizer, lr_factor)
        loss_sum = 0.0
        for _ in range(config.grad_accum):
            inputs, targets = get_batch("train", data_gen)
            loss = loss_fn(model, inputs, targets)
            (loss / config.grad_accum).backward()
            loss_sum += loss.item()
        row = {"step": step + 1, "loss": loss_sum / config.grad_accum,
               "lr": optimizer.param_groups[0]["lr"]}
        if config.grad_clip is not None:
            row["grad_norm"] = clip_grad_norm(model.parameters(), config.grad_clip).item()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

        if step % config.eval_interval == 0 or step == config.max_steps:
            t_eval = time.perf_counter()
            row["val_loss"] = evaluate(model, get_batch, loss_fn, batches=config.eval_batches,
                                       seed=config.seed + 1)
            result.eval_seconds += time.perf_counter() - t_eval
            if row["val_loss"] < result.best_val_loss:
                result.best_val_loss, bad_evals = row["val_loss"], 0
            else:
                bad_evals += 1
            bar.set_postfix(loss=f"{row['loss']:.3f}", val=f"{row['val_loss']:.3f}")
        result.log.append(row)
        bar.update(1)
        if config.checkpoint_interval and step % config.checkpoint_interval == 0:
            checkpoint(step)
        reached = (config.target_val_loss is not None and "val_loss" in row
                   and row["val_loss"] <= config.target_val_loss)
        if reached or (config.patience is not None and bad_evals >= config.patience):
            result.stopped_early = True
            break
    bar.close()
    result.step = step
    result.seconds = time.perf_counter() - start
    checkpoint(step)
    return result


__all__ = ["TrainConfig", "TrainResult", "evaluate", "train"]
