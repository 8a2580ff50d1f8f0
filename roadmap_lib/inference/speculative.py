"""Speculative decoding (Leviathan et al., 2023; Chen et al., 2023).

A small *draft* model proposes ``k`` tokens one by one; the large *target* model scores all of
them in one forward pass (``k + 1`` positions, about the cost of one step when a step is bound by
reading weights, or, on a laptop CPU, by per-call overhead). The target keeps the longest prefix
it agrees with and adds one token of its own, so every round yields between 1 and ``k + 1`` tokens.

- Greedy: a draft token is accepted iff it is the target's argmax there; the output is *exactly*
  the target's own greedy output, whatever the draft.
- Sampling: draft token ``x ~ q`` is accepted with probability ``min(1, p(x) / q(x))``; on a
  rejection the replacement is drawn from ``norm(max(0, p - q))``. Each emitted token is then
  distributed exactly as ``p`` (see :func:`accept_or_resample`).

Both models keep a KV cache; rejected tokens are cut off with ``KVCache.crop``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..generation import filter_logits


@dataclass
class SpecStats:
    rounds: int = 0
    proposed: int = 0
    accepted: int = 0
    target_calls: int = 0
    draft_calls: int = 0
    accepted_per_round: list[int] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        """Fraction of proposed draft tokens the target accepted."""
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def tokens_per_round(self) -> float:
        return (self.accepted + self.rounds) / self.rounds if self.rounds else 0.0


def _check(target, draft, ids: torch.Tensor, k: int, max_new_tokens: int) -> None:
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.shape[0] != 1 or ids.dtype != torch.long:
        got = f"{tuple(ids.shape)} {ids.dtype}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids: expected a (1, seq) int64 tensor (one sequence), got {got}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected a draft length >= 1, got {k!r}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: expected an int >= 1, got {max_new_tokens!r}")
    if target.config.vocab_size != draft.config.vocab_size:
        raise ValueError(f"draft: expected the target's vocabulary size {target.config.vocab_size}, "
                         f"got {draft.config.vocab_size}")
    limit = min(target.config.context_length, draft.config.context_length)
    if ids.shape[1] + max_new_tokens > limit:
        raise ValueError(f"max_new_tokens: prompt {ids.shape[1]} + {max_new_tokens} new tokens "
                         f"exceeds the context length {limit}")


def _feed(model, cache, seq: list[int]) -> torch.Tensor:
    """Feed the tokens of ``seq`` the cache does not hold yet; logits of those positions."""
    new = torch.tensor([seq[len(cache[0]):]], dtype=torch.long)
    return model(new, cache=cache)[0]


@torch.no_grad()
def speculative_generate(target, draft, ids: torch.Tensor, max_new_tokens: int, *, k: int = 4,
                         temperature: float = 0.0, top_k: int | None = None,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, SpecStats]:
    """Generate ``max_new_tokens`` after ``ids`` (1, seq); return ``(ids + new (1, seq + n), stats)``.

    ``temperature=0``: greedy (identical to the target's greedy decoding). Otherwise sampling from
    the target's ``filter_logits(temperature, top_k)`` distribution, the draft filtered alike.
    """
    _check(target, draft, ids, k, max_new_tokens)
    if temperature < 0:
        raise ValueError(f"temperature: expected >= 0 (0 = greedy), got {temperature!r}")
    greedy = temperature == 0

    def probs(logits):
        return torch.softmax(filter_logits(logits.float(), temperature=temperature, top_k=top_k), -1)

    seq = ids[0].tolist()
    goal = len(seq) + max_new_tokens
    t_cache, d_cache = target.new_cache(), draft.new_cache()
    stats = SpecStats()
    while len(seq) < goal:
        n_draft = min(k, goal - len(seq) - 1)  # the target always adds one token of its own
        # 1. the draft proposes n_draft tokens, one at a time (its first call also catches up on
        #    the confirmed tokens its cache lacks)
        proposal, q = [], []
        for _ in range(n_draft):
            logits = _feed(draft, d_cache, seq + proposal)[-1]
            stats.draft_calls += 1
            if greedy:
                proposal.append(int(logits.argmax()))
            else:
                qi = probs(logits)
                q.append(qi)
                proposal.append(int(torch.multinomial(qi, 1, generator=generator)))
        # 2. the target scores the last confirmed token and every proposal in one pass
        logits = _feed(target, t_cache, seq + proposal)[-(n_draft + 1):]  # (n_draft + 1, vocab)
        stats.target_calls += 1
        # 3. keep the agreed prefix, then one token from the target
        n_ok = 0
        if greedy:
            choice = logits.argmax(-1).tolist()
            while n_ok < n_draft and proposal[n_ok] == choice[n_ok]:
                n_ok += 1
            extra = choice[n_ok]
        else:
            p = probs(logits)
            extra = None
            for i in range(n_draft):
                token, ok = accept_or_resample(p[i], q[i], proposal[i], generator)
                if not ok:
                    extra = token
                    break
                n_ok += 1
            if extra is None:
                extra = int(torch.multinomial(p[n_draft], 1, generator=generator))
        seq += proposal[:n_ok] + [extra]
        for c in t_cache:
            c.crop(len(seq) - 1)
        for c in d_cache:
            c.crop(min(len(c), len(seq) - 1))
        stats.rounds += 1
        stats.proposed += n_draft
        stats.accepted += n_ok
        stats.accepted_per_round.append(n_ok)
    return torch.tensor([seq[:goal]], dtype=torch.long), stats


def accept_or_resample(p: torch.Tensor, q: torch.Tensor, token: int,
                       generator: torch.Generator | None = None) -> tuple[int, bool]:
    """The rejection step: keep draft ``token ~ q`` with probability ``min(1, p/q)``, else draw
    from the residual ``norm(max(0, p - q))``. Returns ``(token, accepted)``.

    Why the output is distributed as ``p``: ``P(x) = q(x) min(1, p(x)/q(x)) + P(reject) r(x)``
    ``= min(q(x), p(x)) + (1 - sum_y min(q(y), p(y))) max(0, p(x) - q(x)) / sum_y max(0, p(y) - q(y))``
    and both sums equal ``1 - sum_y min(p, q)``, so ``P(x) = min(p, q) + max(0, p - q) = p(x)``.
    """
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"p, q: expected two (vocab,) probability vectors, got {tuple(p.shape)} "
                         f"and {tuple(q.shape)}")
    u = torch.rand((), generator=generator)
    if float(u) * float(q[token]) < float(p[token]):
        return token, True
    residual = (p - q).clamp_min(0)
    if float(residual.sum()) <= 0:  # p == q: a rejection cannot happen; fall back to p
        residual = p
    return int(torch.multinomial(residual / residual.sum(), 1, generator=generator)), False


def output_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The exact distribution of :func:`accept_or_resample`'s output when the draft token is
    drawn from ``q``: ``sum_x q(x) [accept x] + P(reject) * residual``. Equals ``p``."""
    accept = torch.minimum(p, q)
    residual = (p - q).clamp_min(0)
    reject = 1 - accept.sum()
    if float(residual.sum()) <= 0:
        return accept
    return accept + reject * residual / residual.sum()


__all__ = ["SpecStats", "accept_or_resample", "output_distribution", "speculative_generate"]
