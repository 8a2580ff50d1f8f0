"""Streaming past the context window: a rolling KV cache, with and without attention sinks
(StreamingLLM, Xiao et al., 2023).

A model trained on windows of ``context_length`` tokens cannot attend further back, and a KV
cache that keeps every token grows without bound. A *rolling* (sliding-window) cache keeps only
the most recent ``window`` tokens. Xiao et al. observed that models put a large share of attention
on the first few tokens whatever they are ("attention sinks"); evicting them breaks the model,
keeping ``n_sink`` of them next to the window repairs it.

:class:`SinkCache` has the ``len``/``update`` interface of :class:`~roadmap_lib.attention.KVCache`,
so it plugs into our models' forward pass unchanged. Positions: a new token gets the position
``len(cache)``, its slot in the cache (as StreamingLLM assigns positions inside the cache). In a
model with learned absolute positions (GPT-2, our zoo model) the cached keys keep the position
they were computed with; once the cache is full every new token gets the last position.
"""

from __future__ import annotations

import math

import torch


class SinkCache:
    """Keep the first ``n_sink`` tokens and the last ``window`` tokens; evict the ones between.

    ``n_sink=0`` is the plain rolling window. After each update the cache holds at most
    ``n_sink + window`` tokens.
    """

    def __init__(self, window: int, n_sink: int = 0) -> None:
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window: expected an int >= 1, got {window!r}")
        if not isinstance(n_sink, int) or n_sink < 0:
            raise ValueError(f"n_sink: expected an int >= 0, got {n_sink!r}")
        self.window, self.n_sink = window, n_sink
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.evicted = 0

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    @property
    def capacity(self) -> int:
        return self.n_sink + self.window

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``(batch, kv_heads, new, d)``; return everything the new tokens may attend to
        (the kept tokens and themselves), then evict down to the capacity."""
        full_k = k if self.k is None else torch.cat([self.k, k], dim=2)
        full_v = v if self.v is None else torch.cat([self.v, v], dim=2)
        n = full_k.shape[2]
        if n > self.capacity:
            keep = torch.cat([torch.arange(self.n_sink), torch.arange(n - self.window, n)])
            self.k, self.v = full_k[:, :, keep], full_v[:, :, keep]
            self.evicted += n - self.capacity
        else:
            self.k, self.v = full_k, full_v
        return full_k, full_v


@torch.no_grad()
def stream_nll(model, ids: torch.Tensor, *, window: int, n_sink: int = 0) -> torch.Tensor:
    """Negative log-likelihood (nats) of each token of ``ids`` (1-D) after the first, feeding the
    stream one token at a time through :class:`SinkCache` (one per layer).

    ``n_sink + window`` must stay below the model's context length so that the newest token's
    position ``len(cache)`` exists.
    """
    if ids.ndim != 1 or ids.dtype != torch.long or len(ids) < 2:
        raise ValueError(f"ids: expected a 1-D int64 tensor of >= 2 tokens, got "
                         f"{tuple(ids.shape)} {ids.dtype}")
    if n_sink + window > model.config.context_length - 1:
        raise ValueError(f"window: n_sink + window = {n_sink + window} must be at most "
                         f"context_length - 1 = {model.config.context_length - 1}")
    cache = [SinkCache(window, n_sink) for _ in range(model.config.n_layers)]
    out = torch.empty(len(ids) - 1)
    for t in range(len(ids) - 1):
        logits = model(ids[None, t:t + 1], cache=cache)[0, -1]
        out[t] = torch.log_softmax(logits.float(), -1)[ids[t + 1]].neg()
    return out


@torch.no_grad()
def recompute_nll(model, ids: torch.Tensor, *, window: int) -> torch.Tensor:
    """The quality reference StreamingLLM compares with: for each token, run the model afresh on
    the last ``window`` tokens (positions 0..window-1, no cache). ``O(window)`` work per token."""
    if ids.ndim != 1 or len(ids) < 2:
        raise ValueError(f"ids: expected a 1-D tensor of >= 2 tokens, got {tuple(ids.shape)}")
    if window > model.config.context_length:
        raise ValueError(f"window: expected at most the context length "
                         f"{model.config.context_length}, got {window}")
    n = len(ids) - 1
    out = torch.empty(n)
    # every position t < window is predicted by one pass over the first window tokens
    first = model(ids[None, :min(window, n)])[0]
    lp = torch.log_softmax(first.float(), -1)
    m = min(window, n)
    out[:m] = lp[torch.arange(m), ids[1:m + 1]].neg()
    if n > window:
        starts = torch.arange(1, n - window + 1)
        windows = ids[starts[:, None] + torch.arange(window)]  # (n - window, window)
        for chunk in torch.split(torch.arange(len(windows)), 64):
            last = model(windows[chunk])[:, -1]
            targets = ids[starts[chunk] + window]
            out[window + chunk] = torch.log_softmax(last.float(), -1)[torch.arange(len(chunk)),
                                                                     targets].neg()
    return out


def perplexity(nll: torch.Tensor) -> float:
    return math.exp(float(nll.mean()))


__all__ = ["SinkCache", "perplexity", "recompute_nll", "stream_nll"]
