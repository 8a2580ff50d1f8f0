"""Logits processors: one small callable per decoding rule, chained into a pipeline.

Every processor has transformers' signature ``processor(ids, scores) -> scores``: ``ids`` are the
tokens so far ``(batch, seq)`` (prompt included), ``scores`` the next-token logits ``(batch, vocab)``,
and the result is new logits, with removed tokens set to ``-inf``. A decoding loop runs a
:class:`LogitsPipeline` (a list of them, applied in order) before it picks a token.

Three families:

- **penalties** change the logits of tokens that already occurred: :class:`RepetitionPenalty`
  (CTRL's divide-or-multiply), :class:`FrequencyPresencePenalty` (OpenAI's subtract-per-count) and
  :class:`NoRepeatNGram` (ban any token that would repeat an n-gram);
- **constraints** forbid given tokens: :class:`BadWords` (token sequences never to write) and
  :class:`MinNewTokens` (no end-of-sequence before a minimum length);
- **warpers** (truncation rules) keep a head of the distribution and drop the tail:
  :class:`Temperature`, :class:`TopK`, :class:`TopP`, :class:`MinP`, :class:`Typical`,
  :class:`Epsilon`, :class:`Eta`.

:func:`make_pipeline` builds a pipeline from keyword arguments in the order transformers'
``generate`` uses (penalties and constraints first, then temperature, top-k, top-p, min-p, typical, epsilon, eta).
``tests/test_logits_processors.py`` checks every processor against its transformers counterpart on
the same scores (frequency/presence penalties, which transformers does not have, against OpenAI's
written definition).
"""

from __future__ import annotations

import math

import torch

from roadmap_lib.generation import apply_temperature, top_k_filter, top_p_filter

NEG_INF = float("-inf")


def _keep_top(remove: torch.Tensor, scores: torch.Tensor, min_tokens_to_keep: int) -> torch.Tensor:
    """Never remove the ``min_tokens_to_keep`` highest-scoring tokens of a row."""
    k = min(min_tokens_to_keep, scores.shape[-1])
    return remove.scatter(-1, torch.topk(scores, k, dim=-1).indices, False)


def _keep_top_ties(remove: torch.Tensor, scores: torch.Tensor, min_tokens_to_keep: int) -> torch.Tensor:
    """Never remove a token scoring at least the ``min_tokens_to_keep``-th highest (ties kept)."""
    k = min(min_tokens_to_keep, scores.shape[-1])
    return remove & (scores < torch.topk(scores, k, dim=-1).values[..., -1:])


def _check_min_keep(min_tokens_to_keep: int) -> int:
    if not isinstance(min_tokens_to_keep, int) or min_tokens_to_keep < 1:
        raise ValueError(f"min_tokens_to_keep: expected an int >= 1, got {min_tokens_to_keep!r}")
    return min_tokens_to_keep


def _check_scores(ids: torch.Tensor, scores: torch.Tensor) -> None:
    if scores.ndim != 2 or ids.ndim != 2 or ids.shape[0] != scores.shape[0]:
        raise ValueError(f"scores: expected (batch, vocab) with ids (batch, seq), got scores "
                         f"{tuple(scores.shape)} and ids {tuple(ids.shape)}")


# --- warpers: keep the head, drop the tail ------------------------------------------------------


class Temperature:
    """``scores / temperature`` (< 1 sharpens, > 1 flattens)."""

    def __init__(self, temperature: float):
        apply_temperature(torch.zeros(1, 1), temperature)  # validates
        self.temperature = temperature

    def __call__(self, ids, scores):
        return apply_temperature(scores, self.temperature)


class TopK:
    """Keep the ``k`` most likely tokens."""

    def __init__(self, k: int):
        top_k_filter(torch.zeros(1, 1), k)  # validates
        self.k = k

    def __call__(self, ids, scores):
        return top_k_filter(scores, self.k)


class TopP:
    """Nucleus sampling {cite}`holtzman2020curious`: the smallest head with probability >= ``p``."""

    def __init__(self, p: float, min_tokens_to_keep: int = 1):
        top_p_filter(torch.zeros(1, 1), p)  # validates
        self.p, self.min_tokens_to_keep = p, _check_min_keep(min_tokens_to_keep)

    def __call__(self, ids, scores):
        return top_p_filter(scores, self.p, self.min_tokens_to_keep)


class MinP:
    """Min-p sampling: keep tokens whose probability is at least ``min_p`` times the top one's.

    The cut scales with the model's confidence: a peaked distribution keeps one or two tokens, a flat
    one keeps many.
    """

    def __init__(self, min_p: float, min_tokens_to_keep: int = 1):
        if not 0.0 <= min_p <= 1.0:
            raise ValueError(f"min_p: expected a float in [0, 1], got {min_p!r}")
        self.min_p, self.min_tokens_to_keep = min_p, _check_min_keep(min_tokens_to_keep)

    def __call__(self, ids, scores):
        probs = scores.softmax(-1)
        remove = probs < self.min_p * probs.amax(-1, keepdim=True)
        return scores.masked_fill(_keep_top(remove, scores, self.min_tokens_to_keep), NEG_INF)


class Typical:
    """Locally typical sampling {cite}`meister2023locally`: rank tokens by how close their surprisal
    ``-log p`` is to the entropy ``H`` and keep the closest ones until their mass reaches ``mass``.

    The most likely token can be dropped when it is far *less* surprising than typical.
    """

    def __init__(self, mass: float = 0.9, min_tokens_to_keep: int = 1):
        if not 0.0 < mass < 1.0:
            raise ValueError(f"typical_p: expected a float in (0, 1), got {mass!r}")
        self.mass, self.min_tokens_to_keep = mass, _check_min_keep(min_tokens_to_keep)

    def __call__(self, ids, scores):
        logp = scores.log_softmax(-1)
        entropy = -(logp * logp.exp()).nansum(-1, keepdim=True)
        distance = (-logp - entropy).abs()
        sorted_distance, order = torch.sort(distance, dim=-1)
        cumulative = scores.gather(-1, order).softmax(-1).cumsum(-1)
        # the last kept rank: the first whose cumulative mass reaches `mass`
        last = (cumulative < self.mass).sum(-1, keepdim=True).clamp(max=scores.shape[-1] - 1)
        remove_sorted = sorted_distance > sorted_distance.gather(-1, last)
        remove_sorted[..., : self.min_tokens_to_keep] = False
        return scores.masked_fill(remove_sorted.scatter(-1, order, remove_sorted), NEG_INF)


class Epsilon:
    """Epsilon sampling {cite}`hewitt2022truncation`: drop tokens with probability below ``epsilon``."""

    def __init__(self, epsilon: float, min_tokens_to_keep: int = 1):
        if not 0.0 < epsilon < 1.0:
            raise ValueError(f"epsilon: expected a float in (0, 1), got {epsilon!r}")
        self.epsilon, self.min_tokens_to_keep = epsilon, _check_min_keep(min_tokens_to_keep)

    def __call__(self, ids, scores):
        remove = scores.softmax(-1) < self.epsilon
        return scores.masked_fill(_keep_top_ties(remove, scores, self.min_tokens_to_keep), NEG_INF)


class Eta:
    """Eta sampling {cite}`hewitt2022truncation`: an entropy-dependent epsilon,
    ``eta = min(epsilon, sqrt(epsilon) * exp(-H))``: flat distributions (high ``H``) cut less."""

    def __init__(self, epsilon: float, min_tokens_to_keep: int = 1):
        if not 0.0 < epsilon < 1.0:
            raise ValueError(f"eta: expected a float in (0, 1), got {epsilon!r}")
        self.epsilon, self.min_tokens_to_keep = epsilon, _check_min_keep(min_tokens_to_keep)

    def __call__(self, ids, scores):
        probs = scores.softmax(-1)
        entropy = torch.distributions.Categorical(logits=scores).entropy()
        eta = torch.clamp(math.sqrt(self.epsilon) * torch.exp(-entropy), max=self.epsilon)[:, None]
        remove = probs < eta
        return scores.masked_fill(_keep_top_ties(remove, scores, self.min_tokens_to_keep), NEG_INF)


# --- penalties: change what already occurred ---------------------------------------------------


def _occurred(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """Counts ``(batch, vocab)`` of each token in ``ids``."""
    counts = torch.zeros(ids.shape[0], vocab + 1, dtype=torch.long)
    counts.scatter_add_(1, ids.clamp(max=vocab), torch.ones_like(ids))
    return counts[:, :vocab]


class RepetitionPenalty:
    """CTRL's repetition penalty {cite}`keskar2019ctrl`: every token already in ``ids`` (prompt
    included) gets its logit divided by ``penalty`` if positive, multiplied if negative, so with
    ``penalty > 1`` it always becomes less likely. ``prompt_length`` tokens at the start are ignored."""

    def __init__(self, penalty: float, prompt_length: int = 0):
        if not isinstance(penalty, (int, float)) or not penalty > 0:
            raise ValueError(f"repetition_penalty: expected a float > 0 (1 = off), got {penalty!r}")
        if prompt_length < 0:
            raise ValueError(f"prompt_length: expected an int >= 0, got {prompt_length!r}")
        self.penalty, self.prompt_length = float(penalty), prompt_length

    def __call__(self, ids, scores):
        _check_scores(ids, scores)
        seen = _occurred(ids[:, self.prompt_length:], scores.shape[-1]) > 0
        penalised = torch.where(scores < 0, scores * self.penalty, scores / self.penalty)
        return torch.where(seen, penalised, scores)


class FrequencyPresencePenalty:
    """OpenAI's frequency and presence penalties:
    ``logit[j] -= count[j] * frequency + (count[j] > 0) * presence``,
    with ``count[j]`` how often token ``j`` was generated so far (tokens after ``prompt_length``).
    Frequency grows with every repeat; presence is a one-off charge. Values in about [-2, 2]."""

    def __init__(self, frequency: float = 0.0, presence: float = 0.0, prompt_length: int = 0):
        for name, v in (("frequency_penalty", frequency), ("presence_penalty", presence)):
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name}: expected a finite float, got {v!r}")
        if prompt_length < 0:
            raise ValueError(f"prompt_length: expected an int >= 0, got {prompt_length!r}")
        self.frequency, self.presence, self.prompt_length = float(frequency), float(presence), prompt_length

    def __call__(self, ids, scores):
        _check_scores(ids, scores)
        counts = _occurred(ids[:, self.prompt_length:], scores.shape[-1]).to(scores.dtype)
        return scores - counts * self.frequency - (counts > 0).to(scores.dtype) * self.presence


class NoRepeatNGram:
    """Ban every token that would complete an ``n``-gram already present in ``ids``
    (prompt included, as transformers does for decoder-only models)."""

    def __init__(self, n: int):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"no_repeat_ngram_size: expected an int >= 1, got {n!r}")
        self.n = n

    def __call__(self, ids, scores):
        _check_scores(ids, scores)
        seq = ids.shape[1]
        if seq < self.n:
            return scores
        windows = ids.unfold(1, self.n, 1)  # (batch, seq - n + 1, n)
        suffix = ids[:, seq - self.n + 1:]  # the last n - 1 tokens
        match = (windows[..., :-1] == suffix[:, None, :]).all(-1)  # windows that start like the suffix
        vocab = scores.shape[-1]
        banned = torch.zeros(ids.shape[0], vocab + 1, dtype=torch.bool)
        banned.scatter_(1, torch.where(match, windows[..., -1].clamp(max=vocab), vocab), True)
        return scores.masked_fill(banned[:, :vocab], NEG_INF)


class BadWords:
    """Never write any of the token sequences in ``sequences``: a one-token sequence is always
    banned; a longer one bans its last token whenever ``ids`` end with the rest of it. One-token
    sequences equal to ``eos_token_id`` are dropped (transformers' ``NoBadWordsLogitsProcessor``)."""

    def __init__(self, sequences: list[list[int]], eos_token_id: int | None = None):
        if (not isinstance(sequences, (list, tuple)) or not sequences
                or not all(isinstance(q, (list, tuple)) and q and all(isinstance(t, int) and t >= 0 for t in q)
                           for q in sequences)):
            raise ValueError(f"bad_words_ids: expected a non-empty list of non-empty lists of token ids, got {sequences!r}")
        self.sequences = [list(q) for q in sequences if not (len(q) == 1 and q[0] == eos_token_id)]

    def __call__(self, ids, scores):
        _check_scores(ids, scores)
        banned = torch.zeros_like(scores, dtype=torch.bool)
        for q in self.sequences:
            if q[-1] >= scores.shape[-1]:
                raise ValueError(f"bad_words_ids: token {q[-1]} is outside the vocabulary of {scores.shape[-1]}")
            head = len(q) - 1
            if head > ids.shape[1]:
                continue
            hit = (ids[:, ids.shape[1] - head:] == torch.tensor(q[:-1])).all(-1) if head else torch.ones(len(ids), dtype=torch.bool)
            banned[:, q[-1]] |= hit
        return scores.masked_fill(banned, NEG_INF)


class MinNewTokens:
    """Forbid ``eos_token_id`` until ``min_new_tokens`` tokens follow the ``prompt_length`` tokens of
    the prompt (transformers' ``MinNewTokensLengthLogitsProcessor``): the answer cannot stop early."""

    def __init__(self, min_new_tokens: int, eos_token_id: int, prompt_length: int):
        for name, v in (("min_new_tokens", min_new_tokens), ("prompt_length", prompt_length),
                        ("eos_token_id", eos_token_id)):
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"{name}: expected an int >= 0, got {v!r}")
        self.min_new_tokens, self.eos_token_id, self.prompt_length = min_new_tokens, eos_token_id, prompt_length

    def __call__(self, ids, scores):
        _check_scores(ids, scores)
        if ids.shape[1] - self.prompt_length >= self.min_new_tokens:
            return scores
        return scores.index_fill(-1, torch.tensor([self.eos_token_id]), NEG_INF)


# --- the pipeline ------------------------------------------------------------------------------


class LogitsPipeline(list):
    """A list of processors applied in order: ``pipeline(ids, scores)``."""

    def __call__(self, ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for processor in self:
            scores = processor(ids, scores)
        return scores


class RowGroups:
    """Different processors for consecutive groups of rows: ``processors[i]`` sees rows
    ``[sum(sizes[:i]), sum(sizes[:i + 1]))``. Runs a sweep over settings as one batch."""

    def __init__(self, processors: list, sizes: list[int]):
        if len(processors) != len(sizes) or not all(isinstance(n, int) and n > 0 for n in sizes):
            raise ValueError(f"sizes: expected one positive int per processor ({len(processors)}), got {sizes!r}")
        self.processors, self.sizes = list(processors), list(sizes)

    def __call__(self, ids, scores):
        if scores.shape[0] != sum(self.sizes):
            raise ValueError(f"scores: expected {sum(self.sizes)} rows (sum of sizes), got {scores.shape[0]}")
        parts, start = [], 0
        for processor, n in zip(self.processors, self.sizes):
            parts.append(processor(ids[start:start + n], scores[start:start + n]))
            start += n
        return torch.cat(parts)


def make_pipeline(*, temperature: float | None = None, top_k: int | None = None,
                  top_p: float | None = None, min_p: float | None = None,
                  typical_p: float | None = None, epsilon: float | None = None,
                  eta: float | None = None, repetition_penalty: float | None = None,
                  frequency_penalty: float = 0.0, presence_penalty: float = 0.0,
                  no_repeat_ngram_size: int | None = None, bad_words_ids: list[list[int]] | None = None,
                  min_new_tokens: int | None = None, eos_token_id: int | None = None,
                  prompt_length: int = 0, min_tokens_to_keep: int = 1) -> LogitsPipeline:
    """The processors that the given arguments switch on, in transformers' order.

    ``prompt_length`` tells the frequency/presence penalty and ``min_new_tokens`` where generated
    tokens start (the repetition penalty and n-gram ban count the prompt too, like transformers);
    ``min_new_tokens`` needs ``eos_token_id``.
    """
    p = LogitsPipeline()
    if repetition_penalty is not None and repetition_penalty != 1.0:
        p.append(RepetitionPenalty(repetition_penalty))
    if frequency_penalty or presence_penalty:
        p.append(FrequencyPresencePenalty(frequency_penalty, presence_penalty, prompt_length))
    if no_repeat_ngram_size:
        p.append(NoRepeatNGram(no_repeat_ngram_size))
    if bad_words_ids:
        p.append(BadWords(bad_words_ids, eos_token_id))
    if min_new_tokens:
        if eos_token_id is None:
            raise ValueError("eos_token_id: min_new_tokens needs the end-of-sequence id to forbid, got None")
        p.append(MinNewTokens(min_new_tokens, eos_token_id, prompt_length))
    if temperature is not None and temperature != 1.0:
        p.append(Temperature(temperature))
    if top_k:
        p.append(TopK(top_k))
    if top_p is not None and top_p < 1.0:
        p.append(TopP(top_p, min_tokens_to_keep))
    if min_p:
        p.append(MinP(min_p, min_tokens_to_keep))
    if typical_p is not None and typical_p < 1.0:
        p.append(Typical(typical_p, min_tokens_to_keep))
    if epsilon:
        p.append(Epsilon(epsilon, min_tokens_to_keep))
    if eta:
        p.append(Eta(eta, min_tokens_to_keep))
    return p


__all__ = [
    "BadWords",
    "Epsilon",
    "Eta",
    "FrequencyPresencePenalty",
    "LogitsPipeline",
    "MinNewTokens",
    "MinP",
    "NoRepeatNGram",
    "RepetitionPenalty",
    "RowGroups",
    "Temperature",
    "TopK",
    "TopP",
    "Typical",
    "make_pipeline",
]
