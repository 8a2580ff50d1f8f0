"""The k-back recall task of chapter 01, and the two small models the chapter races on it.

The task: read a sequence of ``seq_len`` random symbols; at the last position a question arrives,
"which symbol did you see ``k`` steps ago?", and the model must answer with ``symbols[-1 - k]``.
The question comes after the text, so a model cannot know in advance what to keep.

* :class:`LSTMRecall` reads the sequence one step at a time: to answer for any ``k`` its state must
  hold the last ``k`` symbols, squeezed through ``k`` updates; its forward pass is ``seq_len``
  sequential steps long.
* :class:`AttentionRecall` lets the last position look at every position at once, so the answer is
  a lookup at position ``seq_len - 1 - k`` whatever ``k`` is, and all positions are computed in
  parallel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class RecallConfig:
    vocab: int = 8        # number of distinct symbols
    seq_len: int = 32     # length of every sequence (the question sits on the last position)
    d_model: int = 64     # width of both models
    n_layers: int = 2     # LSTM layers / attention blocks
    n_heads: int = 4      # attention heads


def make_recall_batch(batch: int, cfg: RecallConfig, *, distance: torch.Tensor | int | None = None,
                      generator: torch.Generator | None = None):
    """Sample a batch of the k-back recall task.

    Returns ``(symbols, distance, target)``: ``symbols`` (batch, seq_len) int64 in [0, vocab);
    ``distance`` (batch,) int64 in [0, seq_len - 1], the ``k`` asked about; ``target`` (batch,) the
    answer ``symbols[b, seq_len - 1 - distance[b]]``. ``distance`` may be fixed (an int or a
    (batch,) tensor) or, when None, drawn uniformly.
    """
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: expected a positive int, got {batch!r}")
    if cfg.seq_len < 2 or cfg.vocab < 2:
        raise ValueError(f"cfg: expected seq_len >= 2 and vocab >= 2, got seq_len={cfg.seq_len}, vocab={cfg.vocab}")
    symbols = torch.randint(cfg.vocab, (batch, cfg.seq_len), generator=generator)
    if distance is None:
        distance = torch.randint(cfg.seq_len, (batch,), generator=generator)
    else:
        distance = torch.as_tensor(distance, dtype=torch.long).expand(batch).clone()
        if (distance < 0).any() or (distance >= cfg.seq_len).any():
            raise ValueError(
                f"distance: expected values in [0, {cfg.seq_len - 1}], "
                f"got {distance.min().item()}..{distance.max().item()}"
            )
    target = symbols[torch.arange(batch), cfg.seq_len - 1 - distance]
    return symbols, distance, target


class _Embed(nn.Module):
    """Symbol embeddings, plus the question ("k steps back?") added at the last position only."""

    def __init__(self, cfg: RecallConfig):
        super().__init__()
        self.symbol = nn.Embedding(cfg.vocab, cfg.d_model)
        self.question = nn.Embedding(cfg.seq_len, cfg.d_model)

    def forward(self, symbols, distance):
        x = self.symbol(symbols)
        last = torch.zeros_like(x)
        last[:, -1] = self.question(distance)
        return x + last


class LSTMRecall(nn.Module):
    """Embed, run an LSTM left to right, answer from the last state."""

    def __init__(self, cfg: RecallConfig):
        super().__init__()
        self.embed = _Embed(cfg)
        self.lstm = nn.LSTM(cfg.d_model, cfg.d_model, num_layers=cfg.n_layers, batch_first=True)
        self.head = nn.Linear(cfg.d_model, cfg.vocab)

    def forward(self, symbols, distance):
        h, _ = self.lstm(self.embed(symbols, distance))
        return self.head(h[:, -1])


class AttentionRecall(nn.Module):
    """Embed, add learned positions, run pre-norm attention blocks, answer from the last position."""

    def __init__(self, cfg: RecallConfig):
        super().__init__()
        self.embed = _Embed(cfg)
        self.pos = nn.Parameter(torch.randn(cfg.seq_len, cfg.d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, 2 * cfg.d_model, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab)

    def forward(self, symbols, distance):
        x = self.embed(symbols, distance) + self.pos[: symbols.shape[1]]
        return self.head(self.norm(self.blocks(x))[:, -1])


def train_recall(model: nn.Module, cfg: RecallConfig, *, steps: int = 400, batch: int = 64,
                 lr: float = 3e-3, seed: int = 0, progress: bool = True) -> list[float]:
    """Train on fresh random batches (uniform distances) with AdamW; returns the loss per step."""
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    model.train()
    for _ in tqdm(range(steps), desc=type(model).__name__, disable=not progress):
        symbols, distance, target = make_recall_batch(batch, cfg, generator=gen)
        loss = F.cross_entropy(model(symbols, distance), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def accuracy_by_distance(model: nn.Module, cfg: RecallConfig, distances, *, n: int = 256,
                         seed: int = 1) -> torch.Tensor:
    """Accuracy on ``n`` fresh sequences for each distance in ``distances``; shape (len(distances),)."""
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    accs = []
    for d in distances:
        symbols, distance, target = make_recall_batch(n, cfg, distance=int(d), generator=gen)
        accs.append((model(symbols, distance).argmax(-1) == target).float().mean())
    return torch.stack(accs)


def time_per_step(model: nn.Module, cfg: RecallConfig, *, batch: int = 32, repeats: int = 5) -> float:
    """Median wall time in seconds of one forward+backward pass on a batch of ``cfg.seq_len``."""
    symbols, distance, target = make_recall_batch(batch, cfg, generator=torch.Generator().manual_seed(0))
    model.train()
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        F.cross_entropy(model(symbols, distance), target).backward()
        if i:  # the first pass warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    return sorted(times)[len(times) // 2]


def sequential_steps(model: nn.Module, seq_len: int) -> int:
    """Length of the chain of operations that must run one after another for one forward pass.

    An LSTM layer updates its state once per position, each update needing the previous one:
    ``seq_len`` steps per layer. An attention block computes all positions at once: one step per
    block, however long the sequence.
    """
    if isinstance(model, LSTMRecall):
        return seq_len * model.lstm.num_layers
    if isinstance(model, AttentionRecall):
        return len(model.blocks.layers)
    raise TypeError(f"model: expected LSTMRecall or AttentionRecall, got {type(model).__name__}")


@torch.no_grad()
def last_position_attention(model: AttentionRecall, symbols: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """Attention weights of the last position (where the question is) in every block and head.

    Returns a tensor of shape (n_layers, batch, n_heads, seq_len): row sums are 1.
    """
    if not isinstance(model, AttentionRecall):
        raise TypeError(f"model: expected AttentionRecall, got {type(model).__name__}")
    model.eval()
    x = model.embed(symbols, distance) + model.pos[: symbols.shape[1]]
    weights = []
    for layer in model.blocks.layers:
        h = layer.norm1(x)
        _, w = layer.self_attn(h, h, h, need_weights=True, average_attn_weights=False)
        weights.append(w[:, :, -1])
        x = layer(x)
    return torch.stack(weights)


def plot_accuracy_by_distance(distances, curves: dict, vocab: int, ax=None):
    """One accuracy-against-distance line per model, with the chance level 1/vocab."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    for name, acc in curves.items():
        ax.plot(list(distances), [float(a) for a in acc], marker="o", ms=3, label=name)
    ax.axhline(1 / vocab, color="gray", linestyle=":", label=f"chance (1/{vocab})")
    ax.set_xlabel("distance k: how many steps back the asked-for symbol is")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title("k-back recall after equal training")
    ax.legend()
    return ax


def plot_question(model: AttentionRecall, lstm: LSTMRecall, cfg: RecallConfig, distance: int, seed: int = 0,
                  ax=None):
    """One sequence, the question "k back?", where the attention model looks, and both answers."""
    import matplotlib.pyplot as plt

    gen = torch.Generator().manual_seed(seed)
    symbols, dist, target = make_recall_batch(1, cfg, distance=distance, generator=gen)
    weights = last_position_attention(model, symbols, dist)[0, 0]  # first block: (heads, seq_len)
    head = int(weights.max(-1).values.argmax())  # the head that looks most sharply at one position
    w = weights[head]
    answer_attn = model(symbols, dist).argmax(-1).item()
    answer_lstm = lstm(symbols, dist).argmax(-1).item()
    ax = ax if ax is not None else plt.subplots(figsize=(10, 3))[1]
    positions = range(cfg.seq_len)
    colours = ["tab:orange" if p == cfg.seq_len - 1 - distance else "tab:blue" for p in positions]
    ax.bar(positions, w.numpy(), color=colours)
    for p in positions:
        ax.text(p, -0.06, str(symbols[0, p].item()), ha="center", va="top", fontsize=7)
    ax.set_ylim(-0.15, 1.0)
    ax.set_xlabel("position (the symbol is printed under each bar; orange: the one asked for)")
    ax.set_ylabel("attention weight")
    ax.set_title(f"k = {distance}: answer {target.item()}; attention model says {answer_attn}, "
                 f"LSTM says {answer_lstm} (block 1, head {head + 1})")
    return ax
