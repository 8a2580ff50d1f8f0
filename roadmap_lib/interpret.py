"""Looking inside a decoder: attention maps, the residual stream, activation patching, logit lens.

Works on any model shaped like :class:`roadmap_lib.models.GPT`: ``model.blocks`` (each block with
an ``attn`` :class:`~roadmap_lib.attention.MultiHeadAttention`), then ``model.ln_f`` and
``model.lm_head``. Everything is done with forward hooks, removed before each function returns.

The *residual stream* of a pre-norm decoder is the tensor that flows from block to block. We number
its states ``0 .. n_layers``: state 0 is the embeddings (the input to block 0), state ``l`` the
output of block ``l - 1``; the last state goes through the final norm and the unembedding.

- :func:`attention_maps`: every head's attention weights, ``(layers, batch, heads, L, L)``;
- :func:`residual_states`: the stream at every state, ``(layers + 1, batch, L, d_model)``;
- :func:`run_with_patch`: the logits of a run in which some states at some positions are replaced
  by another run's (activation patching, "causal tracing" of :cite:`meng2022locating`);
- :func:`patching_effect`: a metric after patching each (state, position) in turn;
- :func:`logit_lens`: each state read out through the final norm and unembedding
  (:cite:`nostalgebraist2020logitlens`);
- :func:`probe_accuracy`: a linear probe (logistic regression) trained on features, scored on
  held-out ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _check_model(model: nn.Module) -> None:
    for name in ("blocks", "ln_f", "lm_head"):
        if not hasattr(model, name):
            raise TypeError(f"model: expected a GPT-like model with .blocks, .ln_f and .lm_head, "
                            f"got {type(model).__name__} without .{name}")


def _check_ids(ids, name: str = "ids") -> None:
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.is_floating_point():
        got = f"shape {tuple(ids.shape)}, {ids.dtype}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"{name}: expected a (batch, seq) integer tensor, got {got}")


@torch.no_grad()
def attention_maps(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """ids (batch, L) -> attention weights (layers, batch, heads, L, L); rows sum to 1.

    Each block's attention is re-run on the same input with ``return_weights=True`` (the written-out
    path of :func:`~roadmap_lib.attention.scaled_dot_product_attention`).
    """
    _check_model(model)
    _check_ids(ids)
    maps, busy = [], [False]

    def hook(module, args, kwargs, output):
        if busy[0]:
            return
        busy[0] = True
        try:
            maps.append(module(*args, **{**kwargs, "return_weights": True})[1])
        finally:
            busy[0] = False
        return

    handles = [b.attn.register_forward_hook(hook, with_kwargs=True) for b in model.blocks]
    try:
        model(ids)
    finally:
        for h in handles:
            h.remove()
    return torch.stack(maps)


def _state_hooks(model: nn.Module, fn: Callable[[int, torch.Tensor], torch.Tensor | None]):
    """Hooks calling ``fn(state, x)`` on every residual state; a returned tensor replaces ``x``."""

    def pre(module, args):
        out = fn(0, args[0])
        return None if out is None else (out, *args[1:])

    def post(i):
        def hook(module, args, output):
            return fn(i + 1, output)
        return hook

    handles = [model.blocks[0].register_forward_pre_hook(pre)]
    handles += [b.register_forward_hook(post(i)) for i, b in enumerate(model.blocks)]
    return handles


@torch.no_grad()
def residual_states(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """ids (batch, L) -> the residual stream (layers + 1, batch, L, d_model); state 0 = embeddings."""
    _check_model(model)
    _check_ids(ids)
    states = {}

    def keep(i, x):
        states[i] = x.detach().clone()

    handles = _state_hooks(model, keep)
    try:
        model(ids)
    finally:
        for h in handles:
            h.remove()
    return torch.stack([states[i] for i in range(len(model.blocks) + 1)])


@torch.no_grad()
def run_with_patch(model: nn.Module, ids: torch.Tensor, source_states: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """Logits (batch, L, vocab) of ``model(ids)`` with the residual states where ``mask`` is True
    replaced by ``source_states`` (from :func:`residual_states` of another input).

    mask: (layers + 1, L) booleans, one per (state, position), shared by the batch. A patched state
    flows on: later states are computed from it, and are themselves replaced where ``mask`` says so.
    """
    _check_model(model)
    _check_ids(ids)
    n_states = len(model.blocks) + 1
    if source_states.shape[:3] != (n_states, *ids.shape):
        raise ValueError(f"source_states: expected shape ({n_states}, {ids.shape[0]}, {ids.shape[1]}, "
                         f"d_model), got {tuple(source_states.shape)}")
    if mask.shape != (n_states, ids.shape[1]) or mask.dtype != torch.bool:
        raise ValueError(f"mask: expected a ({n_states}, {ids.shape[1]}) bool tensor, got "
                         f"{tuple(mask.shape)} {mask.dtype}")

    def patch(i, x):
        if not mask[i].any():
            return None
        x = x.clone()
        x[:, mask[i]] = source_states[i][:, mask[i]].to(x.dtype)
        return x

    handles = _state_hooks(model, patch)
    try:
        return model(ids)
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def patching_effect(model: nn.Module, clean_ids: torch.Tensor, corrupt_ids: torch.Tensor,
                    metric: Callable[[torch.Tensor], float]) -> torch.Tensor:
    """``metric(logits)`` of the corrupt run with one clean (state, position) patched in, for every
    state and position: a (layers + 1, L) tensor. ``metric`` maps (batch, L, vocab) logits to a number.
    """
    _check_ids(clean_ids, "clean_ids")
    _check_ids(corrupt_ids, "corrupt_ids")
    if clean_ids.shape != corrupt_ids.shape:
        raise ValueError(f"corrupt_ids: expected the shape of clean_ids {tuple(clean_ids.shape)}, "
                         f"got {tuple(corrupt_ids.shape)}")
    clean = residual_states(model, clean_ids)
    n_states, L = clean.shape[0], clean_ids.shape[1]
    out = torch.empty(n_states, L)
    for i in range(n_states):
        for p in range(L):
            mask = torch.zeros(n_states, L, dtype=torch.bool)
            mask[i, p] = True
            out[i, p] = float(metric(run_with_patch(model, corrupt_ids, clean, mask)))
    return out


def recovered_fraction(patched, clean: float, corrupt: float):
    """(patched - corrupt) / (clean - corrupt): 0 = no better than the corrupt run, 1 = the clean one."""
    if clean == corrupt:
        raise ValueError(f"clean: equals corrupt ({clean}); the corruption changed nothing to recover")
    return (patched - corrupt) / (clean - corrupt)


@torch.no_grad()
def logit_lens(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Each residual state through the final norm and unembedding: (layers + 1, batch, L, vocab).

    The last entry equals ``model(ids)``; earlier ones ask what the model would predict if it
    stopped there (meaningful only as far as the later blocks keep the stream in the same basis).
    """
    states = residual_states(model, ids)
    return model.lm_head(model.ln_f(states))


def probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                   test_y: torch.Tensor, *, c: float = 1.0, seed: int = 0) -> float:
    """Held-out accuracy of a logistic-regression probe on (n, d) features and (n,) labels.

    ``c`` is scikit-learn's inverse L2 strength. A probe that succeeds shows the information is
    linearly *decodable* from the features, not that the model *uses* it (patching tests that).
    """
    from sklearn.linear_model import LogisticRegression

    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"{name}_x, {name}_y: expected (n, d) features and (n,) labels, got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf.fit(train_x.double().numpy(), train_y.numpy())
    return float((clf.predict(test_x.double().numpy()) == test_y.numpy()).mean())


__all__ = ["attention_maps", "logit_lens", "patching_effect", "probe_accuracy", "recovered_fraction",
           "residual_states", "run_with_patch"]
