"""A dense bi-encoder small enough to train on a laptop CPU in seconds.

Text -> hashed features -> mean of their embeddings -> linear map -> unit vector. The features are
the words and the character trigrams of each word (``#cat#`` -> ``#ca``, ``cat``, ``at#``), hashed
into ``num_buckets`` rows, the "word hashing" of DSSM (Huang et al. 2013): misspellings and rare
words still share trigrams. Queries and passages go through the same encoder; relevance is the dot
product of the unit vectors (cosine), which a faiss inner-product index searches.

Training is contrastive (DPR, Karpukhin et al. 2020): a batch of ``B`` (query, passage) pairs, each
query scored against all ``B`` passages, and the InfoNCE loss (van den Oord et al. 2018) is the
cross-entropy of picking its own passage: the other ``B - 1`` are free "in-batch negatives".
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .bm25 import simple_tokenize


def _bucket(feature: str, num_buckets: int) -> int:
    return zlib.crc32(feature.encode("utf-8")) % num_buckets  # stable across runs, unlike hash()


def featurize(text: str, num_buckets: int = 8192, max_words: int = 128) -> list[int]:
    """Bucket ids of the first ``max_words`` words of ``text`` and of their character trigrams."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    if not isinstance(num_buckets, int) or num_buckets < 2:
        raise ValueError(f"num_buckets: expected an int >= 2, got {num_buckets!r}")
    ids = []
    for w in simple_tokenize(text)[:max_words]:
        ids.append(_bucket("w:" + w, num_buckets))
        marked = f"#{w}#"
        ids.extend(_bucket("c:" + marked[i: i + 3], num_buckets) for i in range(len(marked) - 2))
    return ids or [0]  # an empty text still gets a (meaningless) vector


class HashedBagEncoder(nn.Module):
    """``forward(features)``: a list of ``B`` bucket-id lists -> ``(B, dim)`` unit vectors."""

    def __init__(self, num_buckets: int = 8192, dim: int = 64) -> None:
        super().__init__()
        self.num_buckets, self.dim = num_buckets, dim
        self.bag = nn.EmbeddingBag(num_buckets, dim, mode="mean")
        self.proj = nn.Linear(dim, dim)
        nn.init.normal_(self.bag.weight, std=0.1)

    def forward(self, features: Sequence[Sequence[int]]) -> torch.Tensor:
        if not len(features) or any(not len(f) for f in features):
            raise ValueError("features: expected a non-empty list of non-empty bucket-id lists")
        flat = torch.tensor([i for f in features for i in f], dtype=torch.long)
        if flat.min() < 0 or flat.max() >= self.num_buckets:
            raise ValueError(f"features: bucket ids must lie in [0, {self.num_buckets}), got "
                             f"[{int(flat.min())}, {int(flat.max())}]")
        offsets = torch.tensor([0, *np.cumsum([len(f) for f in features])[:-1]], dtype=torch.long)
        return F.normalize(self.proj(self.bag(flat, offsets)), dim=-1)

    @torch.no_grad()
    def encode(self, features: Sequence[Sequence[int]], batch_size: int = 512) -> np.ndarray:
        """``(N, dim)`` float32 unit vectors, ready for :class:`~roadmap_lib.retrieval.index.VectorIndex`."""
        was = self.training
        self.eval()
        out = [self(features[i: i + batch_size]) for i in range(0, len(features), batch_size)]
        self.train(was)
        return torch.cat(out).numpy().astype(np.float32)


def info_nce_loss(q: torch.Tensor, p: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """InfoNCE with in-batch negatives: ``q``, ``p`` ``(B, dim)``, pair ``i`` is ``(q[i], p[i])``.

    ``mean_i -log softmax_j(q_i·p_j / temperature)[i]``."""
    if q.ndim != 2 or q.shape != p.shape:
        raise ValueError(f"q, p: expected two (batch, dim) tensors of one shape, got "
                         f"{tuple(q.shape)} and {tuple(p.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature: expected a number > 0, got {temperature}")
    logits = q @ p.T / temperature
    return F.cross_entropy(logits, torch.arange(len(q), device=q.device))


def train_bi_encoder(
    encoder: HashedBagEncoder,
    make_batch: Callable[[random.Random, int], tuple[list[list[int]], list[list[int]]]],
    steps: int = 300,
    batch_size: int = 128,
    lr: float = 3e-3,
    temperature: float = 0.05,
    seed: int = 0,
) -> list[float]:
    """Train ``encoder`` in place with Adam on ``make_batch(rng, batch_size)`` -> (query features,
    passage features); returns the loss of every step. ``make_batch`` should draw distinct
    passages, or an in-batch "negative" may be the positive itself."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.Adam(encoder.parameters(), lr=lr)
    losses = []
    encoder.train()
    for _ in range(steps):
        queries, passages = make_batch(rng, batch_size)
        loss = info_nce_loss(encoder(queries), encoder(passages), temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
