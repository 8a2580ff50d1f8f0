"""Long inputs: attention that never holds the whole L×L score matrix, and loss by position.

**Chunked (query-blocked) attention.** Softmax normalises each *row* of the score matrix on its
own, so the rows can be computed a block at a time: for queries ``i..i+B`` take scores against all
keys ``(B, L)``, softmax, multiply by ``V``, and move on. The output is exactly full attention's,
but the largest temporary is ``B×L`` instead of ``L×L`` per head: memory grows linearly in ``L``
(time is still quadratic). With a causal mask a query block needs only the keys up to its last
position. FlashAttention (chapter 13) also blocks the keys, with an online softmax; this is the
simpler half of that idea (Rabe & Staats 2021 call it "memory-efficient attention").

**Loss by position.** A language model's loss at position ``t`` averaged over many windows tells
how well it uses ``t`` tokens of context, and whether it breaks past the length it was trained on
(the curve jumps up there). :func:`loss_per_position` gives the curve, :func:`bin_mean` smooths it.
:func:`cut_context_loss` gives the same curve when the model sees only its last ``window`` tokens:
a flat loss past the training length may mean that the model ignores what lies further back, and
the two curves tell.

**Needle in a haystack.** A flat loss curve does not show that a model *uses* far context: it can
score well by ignoring it. A retrieval test does: plant a "needle" (``" the key is 48172. "``) at a
chosen depth of a window of ordinary text, end the window with the query ``" the key is "``, and
ask whether the model's next characters are the key. The key is random, so nothing but the needle
can tell the model what it is. :func:`needle_windows` builds such windows (``depth`` 0: the needle
opens the window, 1: it sits right before the query) and :func:`needle_scores` scores the key
characters by teacher forcing: loss, and whether every key character is the model's top choice
(then greedy decoding after the query writes the key exactly). To train a model that can retrieve,
:func:`needle_batches` draws such windows for :func:`roadmap_lib.training.train` and
:func:`needle_loss` weights the loss on the key; :func:`plot_needle_grid` draws a length × depth
heatmap of the results.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name}: expected shape (batch, heads, seq, dim), got {got}")
    if k.shape != v.shape[:-1] + (k.shape[-1],) or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"k, v: expected (batch, heads, seq_k, dim) matching q {tuple(q.shape)}, got "
                         f"k {tuple(k.shape)} and v {tuple(v.shape)}")


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
                      block_size: int = 128, scale: float | None = None) -> torch.Tensor:
    """``softmax(q kᵀ · scale) v`` one block of ``block_size`` queries at a time.

    ``q`` ``(batch, heads, Lq, d)``, ``k``/``v`` ``(batch, heads, Lk, d)`` -> ``(batch, heads, Lq, d)``.
    With ``causal=True`` query ``i`` sees keys ``0..i + (Lk - Lq)`` (the queries are the last ``Lq``
    positions, as with a KV cache: bottom-right aligned; for ``Lq == Lk`` the usual causal mask).
    """
    _check_qkv(q, k, v)
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size: expected an int >= 1, got {block_size!r}")
    lq, lk = q.shape[-2], k.shape[-2]
    if causal and lk < lq:
        raise ValueError(f"k: a causal mask needs at least as many keys as queries, got Lk={lk} < Lq={lq}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    offset = lk - lq
    out = torch.empty(q.shape[:-1] + (v.shape[-1],), dtype=q.dtype, device=q.device)
    for start in range(0, lq, block_size):
        stop = min(start + block_size, lq)
        keys = offset + stop if causal else lk  # later keys are all masked for this block
        s = q[:, :, start:stop] @ k[:, :, :keys].transpose(-2, -1) * scale
        if causal:
            rows = torch.arange(start, stop, device=q.device)[:, None] + offset
            s = s.masked_fill(torch.arange(keys, device=q.device) > rows, float("-inf"))
        out[:, :, start:stop] = torch.softmax(s, dim=-1) @ v[:, :, :keys]
    return out


@torch.no_grad()
def loss_per_position(model, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss at each position: ``ids`` ``(batch, L + 1)`` -> ``(L,)``, in nats.

    ``model(ids[:, :-1])`` must return logits ``(batch, L, vocab)``."""
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.shape[1] < 2:
        raise ValueError(f"ids: expected shape (batch, L + 1) with L >= 1, got "
                         f"{tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__}")
    logits = model(ids[:, :-1])
    loss = F.cross_entropy(logits.transpose(1, 2).float(), ids[:, 1:], reduction="none")
    return loss.mean(0)


@torch.no_grad()
def cut_context_loss(model, ids: torch.Tensor, window: int) -> torch.Tensor:
    """Loss at each position when the model sees only the last ``window`` tokens: ``ids``
    ``(batch, L + 1)`` -> ``(L,)``, in nats. Position ``t >= window`` is predicted from tokens
    ``t - window + 1 .. t`` (a sliding window, one forward pass per position); positions
    ``< window`` see their whole past, as in :func:`loss_per_position`. Where the two curves agree,
    nothing older than ``window`` tokens changed the model's predictions."""
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window: expected an int >= 1, got {window!r}")
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.shape[1] < 2:
        raise ValueError(f"ids: expected shape (batch, L + 1) with L >= 1, got "
                         f"{tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__}")
    x, y = ids[:, :-1], ids[:, 1:]
    first = model(x[:, :window])
    losses = [F.cross_entropy(first.transpose(1, 2).float(), y[:, :window], reduction="none").mean(0)]
    for t in range(window, x.shape[1]):
        logits = model(x[:, t - window + 1:t + 1])[:, -1].float()
        losses.append(F.cross_entropy(logits, y[:, t], reduction="none").mean(0, keepdim=True))
    return torch.cat(losses)


def bin_mean(values: torch.Tensor, width: int) -> torch.Tensor:
    """Means of consecutive bins of ``width`` values of a 1-D tensor (a last partial bin is dropped)."""
    if values.ndim != 1:
        raise ValueError(f"values: expected a 1-D tensor, got shape {tuple(values.shape)}")
    if not isinstance(width, int) or not 1 <= width <= len(values):
        raise ValueError(f"width: expected an int in [1, {len(values)}], got {width!r}")
    n = len(values) // width
    return values[: n * width].reshape(n, width).mean(1)


@dataclass(frozen=True)
class NeedleTask:
    """The needle and the query, as templates with ``{key}``; ``key_len`` characters drawn
    uniformly from ``key_chars``. The window ends with ``query`` filled in, so the last ``key_len``
    characters of a window are the key."""

    needle: str = " the key is {key}. "
    query: str = " the key is {key}"
    key_len: int = 5
    key_chars: str = "0123456789"

    def __post_init__(self) -> None:
        for name in ("needle", "query"):
            if "{key}" not in getattr(self, name):
                raise ValueError(f"{name}: expected a template containing '{{key}}', got {getattr(self, name)!r}")
        if not self.query.endswith("{key}"):
            raise ValueError(f"query: expected a template ending with '{{key}}', got {self.query!r}")
        if not isinstance(self.key_len, int) or self.key_len < 1:
            raise ValueError(f"key_len: expected an int >= 1, got {self.key_len!r}")
        if len(set(self.key_chars)) < 2:
            raise ValueError(f"key_chars: expected at least 2 distinct characters, got {self.key_chars!r}")

    def overhead(self) -> int:
        """Characters of a window taken by the needle and the query (the rest is haystack)."""
        return len(self.needle.format(key="x" * self.key_len)) + len(self.query.format(key="x" * self.key_len))


def needle_windows(hay: torch.Tensor, encode: Callable[[str], torch.Tensor], length: int,
                   depth: float | torch.Tensor,
                   n: int, *, task: NeedleTask = NeedleTask(), generator: torch.Generator | None = None
                   ) -> torch.Tensor:
    """``n`` windows ``(n, length + 1)`` of token ids: haystack from ``hay`` (1-D ids; a random
    contiguous stretch per window), the needle with a fresh random key inserted after a fraction
    ``depth`` of the haystack (a float, or a 1-D tensor of ``n`` fractions, one per window), and the
    query with the key at the end.

    ``model(ids[:, :-1])`` predicts ``ids[:, 1:]``; the key is ``ids[:, -task.key_len:]``."""
    if not isinstance(hay, torch.Tensor) or hay.ndim != 1:
        raise ValueError(f"hay: expected a 1-D tensor of token ids, got "
                         f"{tuple(hay.shape) if isinstance(hay, torch.Tensor) else type(hay).__name__}")
    depths = torch.as_tensor(depth, dtype=torch.float64)
    if depths.ndim > 1 or not bool(((depths >= 0) & (depths <= 1)).all()):
        raise ValueError(f"depth: expected a fraction in [0, 1] or a 1-D tensor of them, got {depth!r}")
    hay_len = length + 1 - task.overhead()
    if hay_len < 0:
        raise ValueError(f"length: expected at least {task.overhead() - 1} (needle and query), got {length}")
    if len(hay) <= hay_len:
        raise ValueError(f"hay: expected more than {hay_len} ids for length {length}, got {len(hay)}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    if depths.ndim == 1 and len(depths) != n:
        raise ValueError(f"depth: expected {n} fractions (one per window), got {len(depths)}")
    starts = torch.randint(0, len(hay) - hay_len, (n,), generator=generator)
    keys = torch.randint(0, len(task.key_chars), (n, task.key_len), generator=generator)
    cuts = (depths.expand(n) * hay_len).round().long().tolist()
    rows = []
    for start, key_ids, cut in zip(starts.tolist(), keys.tolist(), cuts):
        key = "".join(task.key_chars[i] for i in key_ids)
        piece = hay[start:start + hay_len]
        rows.append(torch.cat([piece[:cut], encode(task.needle.format(key=key)), piece[cut:],
                               encode(task.query.format(key=key))]))
    return torch.stack(rows)


@torch.no_grad()
def needle_scores(model, ids: torch.Tensor, key_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, found)`` per window, both ``(n,)``: the mean loss (nats) on the last ``key_len``
    ids of each window of ``ids`` ``(n, L + 1)``, and whether each of them is the model's top
    choice given the ones before (teacher forcing: then greedy decoding writes the key exactly)."""
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2:
        raise ValueError(f"ids: expected shape (n, L + 1), got "
                         f"{tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__}")
    if not isinstance(key_len, int) or not 1 <= key_len < ids.shape[1]:
        raise ValueError(f"key_len: expected an int in [1, {ids.shape[1] - 1}], got {key_len!r}")
    logits = model(ids[:, :-1])[:, -key_len:].float()  # logits at t predict ids[t + 1]
    key = ids[:, -key_len:]
    loss = F.cross_entropy(logits.transpose(1, 2), key, reduction="none").mean(1)
    return loss, (logits.argmax(-1) == key).all(1)


def needle_batches(hay: torch.Tensor, encode: Callable[[str], torch.Tensor], length: int, batch_size: int,
                   *, task: NeedleTask = NeedleTask()):
    """A ``get_batch(split, generator)`` for :func:`roadmap_lib.training.train` that trains on needle
    windows: ``hay`` is ``{split: 1-D ids}``; each window of ``length`` gets the needle at a uniformly
    random depth. Returns ``(inputs, targets)``, both ``(batch_size, length)``."""
    if not isinstance(hay, dict) or not all(isinstance(v, torch.Tensor) for v in hay.values()):
        raise ValueError(f"hay: expected a dict {{split: 1-D tensor of ids}}, got {type(hay).__name__}")

    def get_batch(split: str, generator: torch.Generator | None = None):
        if split not in hay:
            raise ValueError(f"split: expected one of {sorted(hay)}, got {split!r}")
        depth = torch.rand(batch_size, generator=generator, dtype=torch.float64)
        ids = needle_windows(hay[split], encode, length, depth, batch_size, task=task, generator=generator)
        return ids[:, :-1], ids[:, 1:]

    return get_batch


def needle_loss(key_len: int, key_weight: float):
    """A ``loss_fn(model, inputs, targets)`` for needle windows: ``(1 - key_weight)`` × the mean
    next-token loss on every target but the last ``key_len`` + ``key_weight`` × the mean loss on
    those (the key). With ``key_weight = key_len / L`` it is the plain language-model loss."""
    if not isinstance(key_len, int) or key_len < 1:
        raise ValueError(f"key_len: expected an int >= 1, got {key_len!r}")
    if not 0.0 <= key_weight <= 1.0:
        raise ValueError(f"key_weight: expected a float in [0, 1], got {key_weight!r}")

    def loss_fn(model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(model(inputs).transpose(1, 2).float(), targets, reduction="none")
        return (1 - key_weight) * ce[:, :-key_len].mean() + key_weight * ce[:, -key_len:].mean()

    return loss_fn


def plot_needle_grid(found, lengths, depths, *, title: str = "", train_len: int | None = None, ax=None):
    """Heatmap of a needle test: ``found`` ``(len(lengths), len(depths))`` fractions in [0, 1],
    rows = window lengths, columns = needle depths; each cell is labelled with its value. Lengths
    above ``train_len`` get a "(Nx)" label. Returns the axes."""
    import matplotlib.pyplot as plt

    found = torch.as_tensor(found, dtype=torch.float64)
    if found.shape != (len(lengths), len(depths)):
        raise ValueError(f"found: expected shape ({len(lengths)}, {len(depths)}) (lengths, depths), "
                         f"got {tuple(found.shape)}")
    ax = plt.subplots(figsize=(4, 2.6))[1] if ax is None else ax
    ax.imshow(found.numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto", origin="lower")
    for i in range(len(lengths)):
        for j in range(len(depths)):
            v = found[i, j].item()
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="black" if v > 0.6 else "white")
    ax.set_xticks(range(len(depths)), [f"{round(100 * d)}%" for d in depths])
    ax.set_yticks(range(len(lengths)), [f"{n}" + (f" ({n / train_len:g}x)" if train_len else "") for n in lengths])
    ax.set(xlabel="needle depth (0%: window start)", ylabel="window length", title=title)
    return ax


__all__ = ["NeedleTask", "bin_mean", "chunked_attention", "cut_context_loss", "loss_per_position", "needle_batches",
           "needle_loss", "needle_scores", "needle_windows", "plot_needle_grid"]
