"""The green-list watermark of Kirchenbauer et al. (2023): bias generation, then detect it with a z-test.

At each step the previous token seeds a pseudo-random split of the vocabulary into a *green list*
(a fraction ``gamma`` of it) and a red list; the generator adds ``delta`` to the logits of the green
tokens. Someone who knows the key recounts, for each token of a text, whether it fell in the green
list its predecessor defines. Without the watermark each token is green with probability ``gamma``
(whatever the text, since the split is random and secret), so the count ``g`` of green tokens out
of ``n`` scored ones has mean ``gamma n`` and variance ``gamma (1 - gamma) n``; the detector is

    z = (g - gamma n) / sqrt(n gamma (1 - gamma)),

about N(0, 1) on ordinary text and large on watermarked text.

- :func:`green_table` is the whole secret: row ``t`` is the green list after token ``t``
  ``(vocab, vocab)`` bool, exactly ``round(gamma * vocab)`` green per row (so ``gamma`` below is
  that fraction, not the requested one, when ``gamma * vocab`` is not an integer);
- :class:`GreenListWatermark` is a logits processor (``processor(ids, scores) -> scores``, as in
  :mod:`roadmap_lib.logits_processors`), usable in any decoding loop;
- :func:`green_counts` and :func:`z_scores` are the detector.

The table for a vocabulary of ``V`` tokens costs ``V * V`` booleans: fine for character and word
vocabularies, where the paper hashes the previous token instead for 50k-token vocabularies.
"""

from __future__ import annotations

import math

import torch


def _check_gamma(gamma: float) -> float:
    if not isinstance(gamma, (int, float)) or not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma: expected a float in (0, 1), got {gamma!r}")
    return float(gamma)


def green_table(vocab_size: int, gamma: float = 0.5, key: int = 15485863) -> torch.Tensor:
    """``(vocab_size, vocab_size)`` bool: row ``t`` marks the green list that follows token ``t``.

    Each row is a random permutation's first ``round(gamma * vocab_size)`` tokens, seeded by
    ``key`` and ``t``, so the same key always gives the same table.
    """
    if not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size: expected an int >= 2, got {vocab_size!r}")
    gamma = _check_gamma(gamma)
    n_green = round(gamma * vocab_size)
    if not 0 < n_green < vocab_size:
        raise ValueError(f"gamma: gamma * vocab_size must round to 1 .. vocab_size - 1, got {gamma} * {vocab_size}")
    table = torch.zeros(vocab_size, vocab_size, dtype=torch.bool)
    g = torch.Generator()
    for t in range(vocab_size):
        g.manual_seed(int(key) * 1_000_003 + t)
        table[t, torch.randperm(vocab_size, generator=g)[:n_green]] = True
    return table


def effective_gamma(table: torch.Tensor) -> float:
    """The green fraction of a table's rows (all rows have the same count)."""
    return int(table[0].sum()) / table.shape[1]


class GreenListWatermark:
    """Logits processor: ``scores + delta`` on the green list of each row's last token.

    ``ids`` (batch, seq), ``scores`` (batch, vocab) -> (batch, vocab). ``delta = 0`` changes nothing;
    ``delta`` may be a ``(batch,)`` tensor, one strength per row (a sweep in one batch).
    """

    def __init__(self, table: torch.Tensor, delta: float | torch.Tensor = 2.0):
        if table.ndim != 2 or table.shape[0] != table.shape[1] or table.dtype != torch.bool:
            raise ValueError(f"table: expected a square bool (vocab, vocab) tensor, got {table.dtype} "
                             f"{tuple(table.shape)}")
        if isinstance(delta, torch.Tensor):
            if delta.ndim != 1 or bool((delta < 0).any()):
                raise ValueError(f"delta: expected a float >= 0 or a (batch,) tensor of them, got {delta!r}")
            delta = delta.float()[:, None]
        elif not isinstance(delta, (int, float)) or delta < 0:
            raise ValueError(f"delta: expected a float >= 0, got {delta!r}")
        else:
            delta = float(delta)
        self.table, self.delta = table, delta

    def __call__(self, ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if ids.ndim != 2 or scores.ndim != 2 or scores.shape != (ids.shape[0], self.table.shape[0]):
            raise ValueError(f"scores: expected (batch, {self.table.shape[0]}) with ids (batch, seq), got "
                             f"scores {tuple(scores.shape)} and ids {tuple(ids.shape)}")
        if isinstance(self.delta, torch.Tensor) and len(self.delta) != len(scores):
            raise ValueError(f"delta: expected one value per row ({len(scores)}), got {len(self.delta)}")
        return scores + self.delta * self.table[ids[:, -1]].to(scores.dtype)


def green_counts(ids: torch.Tensor, table: torch.Tensor, start: int = 1) -> tuple[torch.Tensor, int]:
    """``(green (batch,) long, n)``: how many of tokens ``start .. seq-1`` of each row ``(batch, seq)``
    are in the green list of their predecessor, and how many were scored (``n = seq - start``).

    Set ``start`` to the prompt length to score only generated tokens (``start >= 1``: the first
    token of a text has no predecessor).
    """
    if ids.ndim != 2 or ids.dtype != torch.long:
        raise ValueError(f"ids: expected (batch, seq) int64, got {ids.dtype} {tuple(ids.shape)}")
    if not isinstance(start, int) or not 1 <= start < ids.shape[1]:
        raise ValueError(f"start: expected an int in [1, {ids.shape[1] - 1}], got {start!r}")
    if int(ids.min()) < 0 or int(ids.max()) >= table.shape[0]:
        raise ValueError(f"ids: expected ids in [0, {table.shape[0]}), got [{int(ids.min())}, {int(ids.max())}]")
    green = table[ids[:, start - 1 : -1], ids[:, start:]]
    return green.sum(dim=1), ids.shape[1] - start


def z_scores(green: torch.Tensor, n: int, gamma: float) -> torch.Tensor:
    """``(green - gamma n) / sqrt(n gamma (1 - gamma))`` per row (float64)."""
    gamma = _check_gamma(gamma)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    return (green.double() - gamma * n) / math.sqrt(n * gamma * (1 - gamma))


def detect(ids: torch.Tensor, table: torch.Tensor, start: int = 1) -> torch.Tensor:
    """The detector's z-score of each row of ``ids`` ``(batch, seq)`` -> ``(batch,)`` float64."""
    green, n = green_counts(ids, table, start)
    return z_scores(green, n, effective_gamma(table))


__all__ = ["GreenListWatermark", "detect", "effective_gamma", "green_counts", "green_table", "z_scores"]
