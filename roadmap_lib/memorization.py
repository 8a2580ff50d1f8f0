"""Canaries and exposure (Carlini et al., 2019): how much a model memorised a secret it saw in training.

Plant a *canary* such as ``"my pin is 4821"`` in the training text; afterwards, rank the true secret
among every candidate of the same format (all ``|R|`` four-digit pins) by the model's log-likelihood
of the whole canary. The exposure is

    exposure = log2 |R| - log2 rank,        rank = 1 + #{candidates scored strictly higher},

from 0 (the secret is the least likely candidate) to ``log2 |R|`` (the most likely: a greedy search
over the candidates would extract it). A model that never saw the secret has, on average, exposure
about 1 bit (the expected rank is about ``|R| / 2``).

:func:`candidate_log_likelihoods` scores candidate suffixes after a shared prefix with any causal
LM ``model(ids (batch, seq)) -> logits (batch, seq, vocab)``.
"""

from __future__ import annotations

import math

import torch


def exposure(secret_score: float, candidate_scores: torch.Tensor) -> float:
    """``log2 |R| - log2 rank`` of ``secret_score`` among ``candidate_scores`` ``(|R|,)``, which must
    include the secret's own score (higher score = more likely)."""
    if not isinstance(candidate_scores, torch.Tensor) or candidate_scores.ndim != 1 or len(candidate_scores) < 2:
        raise ValueError(f"candidate_scores: expected a 1-D tensor of at least 2 scores, got "
                         f"{getattr(candidate_scores, 'shape', type(candidate_scores).__name__)}")
    if not bool((candidate_scores == secret_score).any()):
        raise ValueError("candidate_scores: expected the secret's own score among the candidates, "
                         f"got none equal to {secret_score!r}")
    rank = 1 + int((candidate_scores > secret_score).sum())
    return math.log2(len(candidate_scores)) - math.log2(rank)


@torch.no_grad()
def candidate_log_likelihoods(model, prefix: torch.Tensor, candidates: torch.Tensor,
                              batch_size: int = 512) -> torch.Tensor:
    """``log p(candidate | prefix)`` (nats, float64) for each row of ``candidates`` ``(|R|, k)``
    after the shared ``prefix`` ``(p,)``; returns ``(|R|,)``."""
    if prefix.ndim != 1 or len(prefix) < 1:
        raise ValueError(f"prefix: expected a non-empty 1-D id tensor, got {tuple(prefix.shape)}")
    if candidates.ndim != 2 or candidates.shape[1] < 1:
        raise ValueError(f"candidates: expected (n_candidates, k), got {tuple(candidates.shape)}")
    p, k = len(prefix), candidates.shape[1]
    # candidates that share all but their last token share one forward pass: run the distinct
    # heads once and read every last token's log-probability off the final position
    if k == 1:
        heads, which = candidates[:1, :0], torch.zeros(len(candidates), dtype=torch.long)
    else:
        heads, which = torch.unique(candidates[:, :-1], dim=0, return_inverse=True)
    head_scores, last = [], []
    for chunk in heads.split(batch_size):
        ids = torch.cat([prefix.expand(len(chunk), p), chunk], dim=1)
        logp = model(ids).double().log_softmax(-1)[:, p - 1 :]  # (chunk, k, vocab)
        head_scores.append(logp[:, :-1].gather(-1, chunk[..., None])[..., 0].sum(dim=1) if k > 1
                           else torch.zeros(len(chunk), dtype=torch.float64))
        last.append(logp[:, -1])
    head_scores, last = torch.cat(head_scores), torch.cat(last)
    return head_scores[which] + last[which, candidates[:, -1]]


__all__ = ["candidate_log_likelihoods", "exposure"]
