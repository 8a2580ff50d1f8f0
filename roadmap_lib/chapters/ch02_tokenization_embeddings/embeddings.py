"""Token embeddings in a tiny language model: initialisation, weight tying, bits per character.

:class:`TinyLM` is Bengio et al.'s (2003) neural language model with a modern touch: the ``context``
previous tokens are embedded, concatenated, passed through an MLP, projected back to the embedding
width and scored against an output embedding (``logits = h @ W_out.T``). With ``tie=True``,
``W_out`` *is* the input embedding (Press & Wolf 2017), which saves ``vocab_size * d_embed``
parameters. It has no attention on purpose: the chapter compares tokenizers, and the same small
model, trained for the same steps on the same number of tokens per step, is a fair probe.

Bits per character make models with different tokenizers comparable: both assign a probability to
the same text, ``bpc = -log2 P(text) / len(text)``, whatever the unit they predict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class TinyLMConfig:
    vocab_size: int
    context: int = 16  # tokens of history
    d_embed: int = 64
    d_hidden: int = 256
    tie: bool = False  # share the input embedding with the output layer
    init_std: float = 0.02  # std of the embedding initialisation (GPT-2 uses 0.02)


class TinyLM(nn.Module):
    def __init__(self, config: TinyLMConfig):
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.d_embed)
        self.mlp = nn.Sequential(
            nn.Linear(c.context * c.d_embed, c.d_hidden), nn.GELU(),
            nn.Linear(c.d_hidden, c.d_embed), nn.LayerNorm(c.d_embed))
        self.lm_head = nn.Linear(c.d_embed, c.vocab_size, bias=False)
        if c.tie:
            self.lm_head.weight = self.wte.weight
        nn.init.normal_(self.wte.weight, std=c.init_std)
        if not c.tie:
            nn.init.normal_(self.lm_head.weight, std=c.init_std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx: (batch, context) token ids -> (batch, vocab_size) logits of the next token."""
        if idx.ndim != 2 or idx.shape[1] != self.config.context:
            raise ValueError(f"idx: expected shape (batch, {self.config.context}), "
                             f"got {tuple(idx.shape)}")
        x = self.wte(idx).flatten(1)
        return self.lm_head(self.mlp(x))


def windows(ids: torch.Tensor, context: int, pad_id: int = 0):
    """All (history, next token) pairs of a 1-D id sequence, left-padded with ``pad_id``:
    ``x`` of shape (n, context) and ``y`` of shape (n,)."""
    padded = torch.cat([torch.full((context,), pad_id, dtype=ids.dtype), ids])
    x = padded.unfold(0, context, 1)[:-1]
    return x, ids


@torch.no_grad()
def bits_per_char(model: TinyLM, ids: torch.Tensor, n_chars: int, batch: int = 4096) -> float:
    """``-log2 P(text) / n_chars`` for the token sequence ``ids`` that encodes a text of
    ``n_chars`` characters."""
    model.eval()
    x, y = windows(ids, model.config.context)
    nll = 0.0
    for i in range(0, len(y), batch):
        nll += F.cross_entropy(model(x[i:i + batch]), y[i:i + batch], reduction="sum").item()
    model.train()
    return nll / math.log(2) / n_chars


def train_lm(model: TinyLM, ids: torch.Tensor, steps: int, batch: int = 128, lr: float = 3e-3,
             seed: int = 0, progress: bool = True, eval_every: int = 0,
             callback=None) -> list[float]:
    """Train on random windows of ``ids`` with AdamW; returns the loss (nats/token) per step.

    With ``eval_every > 0``, ``callback(step)`` is called after every ``eval_every``-th step (it
    may evaluate the model; it does not touch the batches, so the run is the same with or
    without it)."""
    if not isinstance(eval_every, int) or eval_every < 0:
        raise ValueError(f"eval_every: expected a non-negative int, got {eval_every!r}")
    if eval_every and callback is None:
        raise ValueError("callback: expected a function of the step when eval_every > 0, got None")
    g = torch.Generator().manual_seed(seed)
    x, y = windows(ids, model.config.context)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    from tqdm.auto import tqdm

    losses = []
    for _ in tqdm(range(steps), desc="training", disable=not progress, leave=False):
        j = torch.randint(0, len(y), (batch,), generator=g)
        loss = F.cross_entropy(model(x[j]), y[j])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if eval_every and len(losses) % eval_every == 0:
            callback(len(losses))
    return losses


def pca_2d(weight: torch.Tensor) -> torch.Tensor:
    """Project rows of ``weight`` (n, d) on their two principal components: (n, 2)."""
    if weight.ndim != 2:
        raise ValueError(f"weight: expected a 2-D (n, d) matrix, got shape {tuple(weight.shape)}")
    w = weight.detach().float()
    w = w - w.mean(0)
    _, _, v = torch.linalg.svd(w, full_matrices=False)
    return w @ v[:2].T
