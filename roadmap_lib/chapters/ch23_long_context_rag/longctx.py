"""Chapter 23's context-extension experiment: a small RoPE model read past its training length.

A character-level Llama (RMSNorm, SwiGLU, RoPE) trains on 64-character windows of the Jargon File.
On validation windows of 1×, 2× and 4× that length we measure the loss at every position with
plain RoPE and with three test-time rescalings of the rotation angles (no fine-tuning): position
interpolation ("linear"), NTK-aware ("ntk") and YaRN ("yarn"), each with ``factor = L / 64``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch

from roadmap_lib.data import CharLMData
from roadmap_lib.longcontext import loss_per_position
from roadmap_lib.models.llama import Llama, LlamaConfig
from roadmap_lib.rope import RoPEConfig
from roadmap_lib.training import TrainConfig, train

METHODS = ("rope", "linear", "ntk", "yarn")  # "rope": no rescaling


@dataclass
class LongCtxConfig:
    train_len: int = 64
    eval_factors: tuple[int, ...] = (1, 2, 4)
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    eval_windows: int = 32  # validation windows per length (the same start positions for every method)


def data(cfg: LongCtxConfig, legacy_starts: bool = False) -> CharLMData:
    """The Jargon File in windows of ``cfg.train_len``; ``legacy_starts`` only for an artifact trained
    before ``get_batch``'s fix (``roadmap_lib.data.LEGACY_SAMPLER_ARTIFACTS``)."""
    return CharLMData(context=cfg.train_len, batch_size=cfg.batch_size, legacy_starts=legacy_starts)


def new_model(vocab_size: int, cfg: LongCtxConfig) -> Llama:
    return Llama(LlamaConfig(vocab_size=vocab_size, context_length=cfg.train_len * max(cfg.eval_factors),
                             d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads))


def train_model(cfg: LongCtxConfig, seed: int, progress: bool = False) -> tuple[Llama, CharLMData]:
    d = data(cfg)
    torch.manual_seed(seed)
    model = new_model(len(d.vocab), cfg)
    train(model, d.get_batch, TrainConfig(max_steps=cfg.steps, lr=cfg.lr, warmup_steps=50,
                                          eval_interval=cfg.steps, eval_batches=4, seed=seed,
                                          progress=progress))
    return model.eval(), d


def rope_config(method: str, factor: float, head_dim: int, train_len: int) -> RoPEConfig:
    """The rotary settings for reading ``factor`` × the training length with ``method``."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if method == "rope" or factor == 1:
        return RoPEConfig(head_dim)
    extra = {"original_max_position": train_len} if method == "yarn" else {}
    return RoPEConfig(head_dim, scaling=method, factor=float(factor), **extra)


@contextmanager
def rescaled(model: Llama, method: str, factor: float, train_len: int):
    """Temporarily swap the model's shared rotary settings."""
    old = model.rotary.config
    model.rotary.config = rope_config(method, factor, model.config.head_dim, train_len)
    try:
        yield model
    finally:
        model.rotary.config = old


def eval_windows(d: CharLMData, length: int, n: int, seed: int = 1234) -> torch.Tensor:
    """``(n, length + 1)`` validation windows, starts drawn with ``seed``."""
    val = d.splits["val"]
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(val) - length - 1, (n,), generator=g)
    return val[starts[:, None] + torch.arange(length + 1)]


def curves(model: Llama, d: CharLMData, cfg: LongCtxConfig, methods=METHODS) -> dict:
    """``{method: {factor: loss per position (list of L floats)}}`` on the same windows."""
    out = {m: {} for m in methods}
    for f in cfg.eval_factors:
        ids = eval_windows(d, cfg.train_len * f, cfg.eval_windows)
        for m in methods:
            with rescaled(model, m, f, cfg.train_len):
                out[m][f] = loss_per_position(model, ids).tolist()
    return out


def summary(curve: dict, train_len: int) -> dict:
    """Mean loss over all positions and over the positions past ``train_len`` only."""
    out = {}
    for m, by_f in curve.items():
        for f, c in by_f.items():
            f = int(f)
            row = {"all": sum(c) / len(c)}
            if f > 1:
                row["beyond"] = sum(c[train_len:]) / len(c[train_len:])
            out.setdefault(m, {})[f] = row
    return out


def config_dict(cfg: LongCtxConfig) -> dict:
    return asdict(cfg)
