"""Model soups (Wortsman et al. 2022): average the weights of models fine-tuned from the same
starting point, and get one model at the inference cost of one, which can beat the best single
ingredient (in the paper, the greedy soup does; the uniform soup not always).

- **uniform soup**: the plain average of every ingredient's weights;
- **greedy soup**: go through the ingredients from best to worst held-out score and keep one in
  the pot only if the averaged model scores at least as well with it.

Averaging works because fine-tuned copies of one pre-trained model tend to lie in one basin of the
loss; models trained from different initialisations do not, and their average is usually bad.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The elementwise mean of floating-point tensors; other tensors (integer buffers, step
    counters) must be equal in every state and are copied."""
    if not states:
        raise ValueError("states: expected at least one state dict, got none")
    keys = list(states[0])
    for i, s in enumerate(states[1:], 1):
        missing, unexpected = sorted(set(keys) - set(s)), sorted(set(s) - set(keys))
        if missing or unexpected:
            raise ValueError(f"states[{i}]: expected the keys of states[0]; missing {missing}, "
                             f"unexpected {unexpected}")
    out = {}
    for k in keys:
        ts = [s[k] for s in states]
        for i, t in enumerate(ts[1:], 1):
            if t.shape != ts[0].shape:
                raise ValueError(f"states[{i}][{k!r}]: expected shape {tuple(ts[0].shape)}, "
                                 f"got {tuple(t.shape)}")
        if ts[0].is_floating_point():
            out[k] = torch.stack([t.float() for t in ts]).mean(0).to(ts[0].dtype)
        else:
            if any(not torch.equal(t, ts[0]) for t in ts[1:]):
                raise ValueError(f"states: the non-float tensor {k!r} differs between "
                                 "ingredients and cannot be averaged")
            out[k] = ts[0].clone()
    return out


def uniform_soup(models: Sequence[nn.Module]) -> nn.Module:
    """A new model (a copy of ``models[0]``) holding the average of every model's weights."""
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise TypeError(f"models: expected a non-empty list of nn.Module, got {models!r:.80}")
    kinds = {type(m).__name__ for m in models}
    if len(kinds) > 1:
        raise TypeError(f"models: expected copies of one architecture, got {sorted(kinds)}")
    soup = copy.deepcopy(models[0])
    soup.load_state_dict(average_state_dicts([m.state_dict() for m in models]))
    return soup


def greedy_soup(models: Sequence[nn.Module], score: Callable[[nn.Module], float]
                ) -> tuple[nn.Module, list[int]]:
    """Greedy soup: ``score(model)`` is a held-out metric, higher is better. Returns the soup
    and the indices of the models in it (best first)."""
    if not models:
        raise ValueError("models: expected at least one model, got none")
    scores = [float(score(m)) for m in models]
    order = sorted(range(len(models)), key=lambda i: -scores[i])
    chosen = [order[0]]
    best, soup = scores[order[0]], copy.deepcopy(models[order[0]])
    for i in order[1:]:
        candidate = uniform_soup([models[j] for j in [*chosen, i]])
        s = float(score(candidate))
        if s >= best:
            chosen, best, soup = [*chosen, i], s, candidate
    return soup, chosen


__all__ = ["average_state_dicts", "greedy_soup", "uniform_soup"]
