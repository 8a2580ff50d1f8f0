"""Chapter 23's needle in a haystack: does a small RoPE model find a planted key past its training
length, with plain RoPE, PI, NTK-aware scaling or YaRN?

A character model cannot answer questions, so the needle is one it can learn to use
(:class:`roadmap_lib.longcontext.NeedleTask`): every training window of 64 characters of the Jargon
File holds ``" the key is 48172. "`` at a random depth and ends with ``" the key is 48172"``. The key
is five random digits, fresh in every window, so the only way to predict the last five characters
is to find the needle and copy it. The model is Part B's character Llama (same size, RoPE), trained
from scratch on such windows; the loss is the mean of two means: next-character loss on the text,
and loss on the five key characters (with the plain language-model loss the key would be 5 of 64
targets; the weight makes retrieval half of the objective, for a short training).

At test time the window is 1x, 2x or 4x the training length, the needle sits at depths 0 (start
of the window) to 1 (right before the query), and the score is the fraction of windows whose five
key characters are all the model's top choice (greedy decoding would write the key exactly).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from roadmap_lib.chapters.ch23_long_context_rag import longctx
from roadmap_lib.data import CharLMData
from roadmap_lib.longcontext import (
    NeedleTask,
    needle_batches,
    needle_loss,
    needle_scores,
    needle_windows,
)
from roadmap_lib.training import TrainConfig, train

TASK = NeedleTask()


@dataclass
class NeedleConfig:
    train_len: int = 64
    lengths: tuple[int, ...] = (64, 128, 256)
    depths: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    steps: int = 1200
    batch_size: int = 32
    lr: float = 3e-3
    key_weight: float = 0.5  # loss = (1 - w) * text loss + w * key loss
    windows: int = 32  # test windows per (length, depth) cell, the same for every method


def model_config() -> longctx.LongCtxConfig:
    """Part B's model (2 layers, d_model 64, 4 heads, RoPE), built for windows up to 4x 64: the
    same configuration as ``artifacts.LONG_CFG``, so ``artifacts.load_llama`` loads both models."""
    return longctx.LongCtxConfig()


def data() -> CharLMData:
    """The corpus split and vocabulary. The needle task draws its own batches and windows
    (``needle_batches``, ``needle_windows``), never ``CharLMData.get_batch``, so the sampler fix of
    issue 12 does not touch it (tests/chapters/test_ch23_*.py checks this)."""
    return longctx.data(model_config())


def train_needle(cfg: NeedleConfig, seed: int, progress: bool = False):
    """Train from ``torch.manual_seed(seed)``; returns ``(model in eval mode, data, training log)``."""
    d = data()
    torch.manual_seed(seed)
    model = longctx.new_model(len(d.vocab), model_config())
    batches = needle_batches(d.splits, d.vocab.encode, cfg.train_len, cfg.batch_size, task=TASK)
    result = train(model, batches, TrainConfig(max_steps=cfg.steps, lr=cfg.lr, warmup_steps=min(50, cfg.steps),
                                                       eval_interval=max(1, cfg.steps // 4), eval_batches=4,
                                                       seed=seed, progress=progress),
                   loss_fn=needle_loss(TASK.key_len, cfg.key_weight))
    return model.eval(), d, result.log


def cell_windows(d: CharLMData, length: int, depth: float, n: int) -> torch.Tensor:
    """The ``n`` validation windows of one cell: the same for every method and every run."""
    g = torch.Generator().manual_seed(10_000 + length * 101 + round(depth * 100))
    return needle_windows(d.splits["val"], d.vocab.encode, length, depth, n, task=TASK, generator=g)


def cell(model, d: CharLMData, cfg: NeedleConfig, method: str, length: int, depth: float):
    """``(fraction of windows whose key is found, mean key loss)`` for one method and cell."""
    ids = cell_windows(d, length, depth, cfg.windows)
    with longctx.rescaled(model, method, length / cfg.train_len, cfg.train_len):
        loss, found = needle_scores(model, ids, TASK.key_len)
    return found.double().mean().item(), loss.mean().item()


def grid(model, d: CharLMData, cfg: NeedleConfig, methods=longctx.METHODS, lengths=None) -> dict:
    """``{"found": {method: {length: [rate per depth]}}, "loss": {...}}`` (lengths as strings)."""
    out = {"found": {}, "loss": {}}
    for m in methods:
        for length in lengths or cfg.lengths:
            cells = [cell(model, d, cfg, m, length, depth) for depth in cfg.depths]
            out["found"].setdefault(m, {})[str(length)] = [c[0] for c in cells]
            out["loss"].setdefault(m, {})[str(length)] = [c[1] for c in cells]
    return out


def found_array(record: dict, method: str, what: str = "found") -> torch.Tensor:
    """``(seeds, lengths, depths)`` found rates (or key losses, ``what="loss"``) of ``method`` in a
    results record written by the ``23-needle`` artifact."""
    lengths = [str(n) for n in record["experiment"]["lengths"]]
    return torch.tensor([[s["grid"][what][method][n] for n in lengths] for s in record["seeds"].values()],
                        dtype=torch.float64)


def config_dict(cfg: NeedleConfig) -> dict:
    return {**asdict(cfg), "task": asdict(TASK), "model": asdict(model_config())}


__all__ = [
    "TASK",
    "NeedleConfig",
    "cell",
    "cell_windows",
    "config_dict",
    "found_array",
    "grid",
    "train_needle",
]
