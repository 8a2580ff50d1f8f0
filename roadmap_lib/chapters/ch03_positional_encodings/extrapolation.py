"""Chapter 03's experiment: one tiny causal LM, seven ways to tell it where tokens are.

The same character-level transformer (pre-norm, 2 layers, d_model 64) is trained on windows of
``train_len`` characters of the Jargon File with each positional scheme, then scored on validation
windows of 1×, 2× and 4× that length: the extrapolation table. RoPE is also scored with two
test-time context extensions (position interpolation and NTK-aware scaling), with no fine-tuning.

Rebuild the shipped results (about 10 minutes on one idle CPU core; 25 on a busy shared one)::

    python -m roadmap_lib build 03-extrapolation   # data/03_extrapolation.json and data/03_alibi.safetensors

The build also keeps the trained ALiBi model (the notebook studies what it reads) and the first
``REPLAY_STEPS`` training losses of every scheme, so that a reader can replay the start of a run
and see it land on the recorded losses without paying for the whole training.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from roadmap_lib import set_seed
from roadmap_lib.attention import scaled_dot_product_attention
from roadmap_lib.checkpoint import load_model, read_model_metadata, save_model
from roadmap_lib.data import CharLMData
from roadmap_lib.measure import cpu_threads
from roadmap_lib.positional import (
    LearnedPositionalEmbedding,
    RoPEConfig,
    RotaryEmbedding,
    ShawRelativePosition,
    SinusoidalPositionalEncoding,
    T5RelativePositionBias,
    alibi_bias,
)
from roadmap_lib.training import TrainConfig, train

SCHEMES = ("nope", "sinusoidal", "learned", "shaw", "t5", "rope", "alibi")
#: Rows of the table: a trained scheme, or RoPE with a test-time extension ("rope+pi", "rope+ntk").
ROWS = (*SCHEMES[:-1], "rope+pi", "rope+ntk", "alibi")
RESULTS_FILE = "03_extrapolation.json"
#: The scheme whose trained weights ship (the notebook studies what it reads), and where.
KEPT_SCHEME = "alibi"
CHECKPOINT_FILE = "03_alibi.safetensors"
#: Training losses recorded per scheme from step 1, for a replay of the start of a run.
REPLAY_STEPS = 100


@dataclass
class PosLMConfig:
    vocab_size: int
    scheme: str = "rope"
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 256
    train_len: int = 64  # the learned table has exactly this many rows
    shaw_max_distance: int = 16
    t5_num_buckets: int = 16
    t5_max_distance: int = 64
    rope: RoPEConfig | None = None  # None: plain RoPE over the whole head

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme: expected one of {SCHEMES}, got {self.scheme!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"n_heads: expected a divisor of d_model={self.d_model}, got {self.n_heads}"
            )
        if self.rope is None:
            self.rope = RoPEConfig(self.d_model // self.n_heads)


class CausalSelfAttention(nn.Module):
    def __init__(self, c: PosLMConfig):
        super().__init__()
        self.c, self.head_dim = c, c.d_model // c.n_heads
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.out = nn.Linear(c.d_model, c.d_model)
        self.shaw = (
            ShawRelativePosition(self.head_dim, c.shaw_max_distance) if c.scheme == "shaw" else None
        )

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor | None, rotary: RotaryEmbedding | None
    ) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.c.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if rotary is not None:
            q, k = rotary(q, k)
        if self.shaw is not None:
            y = self.shaw(q, k, v, is_causal=True)
        else:
            y = scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(b, n, -1))


class Block(nn.Module):
    def __init__(self, c: PosLMConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.attn = CausalSelfAttention(c)
        self.mlp = nn.Sequential(
            nn.Linear(c.d_model, c.d_ff), nn.GELU(), nn.Linear(c.d_ff, c.d_model)
        )

    def forward(self, x, bias, rotary):
        x = x + self.attn(self.ln1(x), bias, rotary)
        return x + self.mlp(self.ln2(x))


class PosLM(nn.Module):
    """A character LM whose only difference from scheme to scheme is how positions enter.

    Not :class:`roadmap_lib.models.GPT`: Shaw et al.'s scheme changes the attention itself, T5's
    bias is shared by every layer, and the token vectors start at unit scale so that an added
    sinusoidal table neither drowns them nor is drowned (GPT-2 starts them at 0.02).
    """

    def __init__(self, c: PosLMConfig):
        super().__init__()
        self.c = c
        self.tok = nn.Embedding(c.vocab_size, c.d_model)
        self.absolute = {
            "sinusoidal": lambda: SinusoidalPositionalEncoding(c.d_model),
            "learned": lambda: LearnedPositionalEmbedding(c.train_len, c.d_model),
        }.get(c.scheme, lambda: None)()
        self.t5 = (
            T5RelativePositionBias(c.n_heads, c.t5_num_buckets, c.t5_max_distance, False)
            if c.scheme == "t5"
            else None
        )
        self.rotary = RotaryEmbedding(c.rope) if c.scheme == "rope" else None
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.ln_f = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        for module in self.modules():  # small weights, zero biases (GPT-2's initialisation)
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        # token vectors of unit scale, like the sinusoidal table's entries: neither drowns the other
        nn.init.normal_(self.tok.weight, std=1.0)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (batch, seq) -> logits (batch, seq, vocab)."""
        n = idx.shape[1]
        x = self.tok(idx)
        if self.absolute is not None:
            x = self.absolute(x)
        bias = None
        if self.t5 is not None:
            bias = self.t5(n)  # one bias shared by every layer, as in T5
        elif self.c.scheme == "alibi":
            bias = alibi_bias(self.c.n_heads, n).to(x.device)
        for block in self.blocks:
            x = block(x, bias, self.rotary)
        return self.head(self.ln_f(x))

    def with_rope(self, rope: RoPEConfig) -> PosLM:
        """The same weights with other RoPE angles (test-time context extension)."""
        if self.rotary is None:
            raise ValueError(
                f"rope: only a 'rope' model can change its rotary angles, this one is {self.c.scheme!r}"
            )
        self.rotary = RotaryEmbedding(rope)
        self.c = replace(self.c, rope=rope)
        return self


@dataclass
class ExperimentConfig:
    train_len: int = 64
    eval_factors: tuple[int, ...] = (1, 2, 4)
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-2
    eval_batches: int = 8  # batches of 32 validation windows per length
    seed: int = 0


@lru_cache(maxsize=8)
def _data(length: int, batch_size: int) -> CharLMData:
    return CharLMData(context=length, batch_size=batch_size)


def train_scheme(scheme: str, cfg: ExperimentConfig | None = None, progress: bool = True,
                 stop_at: int | None = None):
    """Train one scheme from ``set_seed(cfg.seed)``; returns ``(model, train_result)``.

    ``stop_at`` stops after that many steps of the same schedule (a replay of the run's start).
    """
    cfg = ExperimentConfig() if cfg is None else cfg
    set_seed(cfg.seed)
    data = _data(cfg.train_len, cfg.batch_size)
    model = PosLM(PosLMConfig(len(data.vocab), scheme=scheme, train_len=cfg.train_len))
    tc = TrainConfig(
        max_steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=cfg.steps // 20,
        weight_decay=0.01,
        eval_interval=cfg.steps,
        eval_batches=2,
        seed=cfg.seed,
        progress=progress,
    )
    with cpu_threads(1):
        result = train(model, data.get_batch, tc, stop_at=stop_at)
    return model, result


@torch.no_grad()
def eval_loss(model: PosLM, length: int, cfg: ExperimentConfig | None = None) -> float | None:
    """Mean next-character loss (nats) over fixed validation windows of ``length``; ``None`` if the
    model cannot take that length (a learned table that is too short)."""
    cfg = ExperimentConfig() if cfg is None else cfg
    if model.c.scheme == "learned" and length > model.c.train_len:
        return None
    model.eval()
    data, g = _data(length, cfg.batch_size), torch.Generator().manual_seed(cfg.seed + 7)
    losses = []
    for _ in range(cfg.eval_batches):
        x, y = data.get_batch("val", g)
        losses.append(F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item())
    return sum(losses) / len(losses)


def extension(row: str, rope: RoPEConfig, factor: float) -> RoPEConfig:
    """The RoPE angles used to score ``row`` at ``factor`` × the training length."""
    if row == "rope+pi" and factor > 1:
        return replace(rope, scaling="linear", factor=factor)
    if row == "rope+ntk" and factor > 1:
        return replace(rope, scaling="ntk", factor=factor)
    return rope


def score(model: PosLM, row: str, cfg: ExperimentConfig | None = None) -> dict[str, float | None]:
    """Losses at each evaluation length, keyed by the length (as a string, for JSON)."""
    cfg = ExperimentConfig() if cfg is None else cfg
    out = {}
    base = model.c.rope
    for f in cfg.eval_factors:
        if row.startswith("rope+"):
            model.with_rope(extension(row, base, f))
        with cpu_threads(1):
            out[str(f * cfg.train_len)] = eval_loss(model, f * cfg.train_len, cfg)
    if row.startswith("rope+"):
        model.with_rope(base)
    return out


def run_all(cfg: ExperimentConfig | None = None, progress: bool = True) -> tuple[dict, PosLM]:
    """Train every scheme and score every row; returns the JSON-ready results and the trained
    ``KEPT_SCHEME`` model."""
    cfg = ExperimentConfig() if cfg is None else cfg
    rows, seconds, train_loss, first_losses = {}, {}, {}, {}
    for scheme in SCHEMES:
        t0 = time.perf_counter()
        model, result = train_scheme(scheme, cfg, progress)
        seconds[scheme] = round(time.perf_counter() - t0, 1)
        train_loss[scheme] = result.log[-1]["val_loss"]
        first_losses[scheme] = [r["loss"] for r in result.log[:REPLAY_STEPS]]
        if scheme == KEPT_SCHEME:
            kept = model
        variants = ("rope", "rope+pi", "rope+ntk") if scheme == "rope" else (scheme,)
        for row in variants:
            rows[row] = score(model, row, cfg)
        if progress:
            print(scheme, rows[scheme], f"{seconds[scheme]} s", flush=True)
    return {
        "description": "Validation loss (nats per character) of the chapter-03 PosLM on Jargon File windows, "
        "by positional scheme and evaluation length; rope+pi / rope+ntk are the rope model with test-time scaling.",
        "command": "python -m roadmap_lib build 03-extrapolation",
        "experiment": asdict(cfg),
        "model": {
            k: v
            for k, v in asdict(PosLMConfig(1)).items()
            if k not in ("vocab_size", "scheme", "rope")
        },
        "torch": torch.__version__,
        "rows": {row: rows[row] for row in ROWS},
        "final_val_loss_at_train_len": train_loss,
        "first_losses": first_losses,
        "checkpoint": CHECKPOINT_FILE,
        "train_seconds": seconds,
    }, kept


def save_trained(model: PosLM, path) -> None:
    """Write a trained model with its configuration in the file's header (full precision, so that
    it scores exactly the numbers in the table)."""
    config = {k: v for k, v in asdict(model.c).items() if k != "rope"}
    save_model(model, path, config=config)


def load_trained(path=None) -> PosLM:
    """The shipped ``KEPT_SCHEME`` model (``data/03_alibi.safetensors``), in eval mode."""
    from roadmap_lib import data_path

    path = data_path(CHECKPOINT_FILE) if path is None else path
    config, _ = read_model_metadata(path)
    model = PosLM(PosLMConfig(**config))
    load_model(model, path)
    return model.eval()


def experiment_config(results: dict) -> ExperimentConfig:
    """The :class:`ExperimentConfig` a results record was built with."""
    return ExperimentConfig(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in results["experiment"].items()})


def load_results(name: str = RESULTS_FILE) -> dict:
    from roadmap_lib import data_path

    return json.loads(data_path(name).read_text())


