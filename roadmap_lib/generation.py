"""Decoding: greedy, beam search, and sampling with temperature, top-k and top-p.

Everything works on any callable ``model(ids) -> logits`` with ids ``(batch, seq)`` and logits
``(batch, seq, vocab)``: our models, or a transformers model wrapped as
``lambda ids: hf_model(ids).logits``. Each step feeds the whole sequence again (clear, quadratic);
``context_length`` crops the input to the model's window, so generation can run past it.
With ``use_cache=True`` (models with a ``new_cache()`` method, like ours) the prompt is fed once
and then only the newest token, the keys and values of the past coming from a KV cache.

The filters follow transformers' logits warpers (``TopKLogitsWarper``, ``TopPLogitsWarper``) and
beam search follows ``generate(num_beams=..., length_penalty=..., num_return_sequences=...)``, with
any logits processors applied to each beam's log-probabilities as transformers does; ``tests/test_generation.py``
checks both against transformers with the same weights. :func:`decode_loop` is the loop greedy and
sampling share; ``roadmap_lib.decoding.generate`` runs it with a pipeline of logits processors
(``roadmap_lib.logits_processors``) and stopping criteria.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Model = Callable[[torch.Tensor], torch.Tensor]


def _check_ids(ids: torch.Tensor) -> None:
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.dtype != torch.long:
        got = f"{tuple(ids.shape)} {ids.dtype}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids: expected a (batch, seq) int64 tensor, got {got}")
    if ids.shape[1] == 0:
        raise ValueError("ids: expected at least one prompt token per row, got seq = 0")


@torch.no_grad()
def next_token_logits(model: Model, ids: torch.Tensor, context_length: int | None = None) -> torch.Tensor:
    """Logits ``(batch, vocab)`` for the token after ``ids``, seeing at most ``context_length`` tokens."""
    if context_length is not None:
        ids = ids[:, -context_length:]
    logits = model(ids)
    if logits.ndim != 3 or logits.shape[:2] != ids.shape:
        raise ValueError(
            f"model: expected logits (batch, seq, vocab) = ({ids.shape[0]}, {ids.shape[1]}, V), "
            f"got {tuple(logits.shape)}"
        )
    return logits[:, -1, :].float()


# --- logits filters: (batch, vocab) -> (batch, vocab), removed tokens set to -inf ----------------


def apply_temperature(logits: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """Divide by ``temperature``: < 1 sharpens the distribution, > 1 flattens it.

    ``temperature`` is a number, or a ``(batch,)`` tensor with one temperature per row.
    """
    if isinstance(temperature, torch.Tensor):
        if temperature.shape != logits.shape[:1] or not bool((temperature > 0).all()):
            raise ValueError(
                f"temperature: expected a ({logits.shape[0]},) tensor of values > 0, "
                f"got shape {tuple(temperature.shape)}"
            )
        return logits / temperature[:, None].to(logits.dtype)
    if not temperature > 0:
        raise ValueError(f"temperature: expected a float > 0 (use greedy for 0), got {temperature!r}")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits per row (and any tied with the k-th); the rest become -inf."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k: expected an int >= 1, got {k!r}")
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability reaches ``p``.

    Sort ascending; drop tokens while the cumulative probability of what is dropped stays
    ``<= 1 - p``; always keep the ``min_tokens_to_keep`` most likely.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"top_p: expected a float in [0, 1], got {p!r}")
    sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - p)
    remove_sorted[..., -min_tokens_to_keep:] = False
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def filter_logits(logits: torch.Tensor, *, temperature: float | torch.Tensor = 1.0,
                  top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """Temperature, then top-k, then top-p (transformers' order)."""
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    return logits


# --- greedy and sampling ----------------------------------------------------------------------


def decode_loop(model: Model, ids: torch.Tensor, max_new_tokens: int, choose, eos_token_id=None,
                pad_token_id=None, context_length=None, use_cache=False, stop=None) -> torch.Tensor:
    """The loop every left-to-right decoder shares: ``choose(ids, logits) -> (batch,)`` picks the next
    token of each row from the logits ``(batch, vocab)``; a row is finished once it emits
    ``eos_token_id`` or ``stop(ids) -> (batch,) bool`` says so, and is padded with ``pad_token_id``
    (default: the eos id) from then on. Stops early when every row is finished."""
    _check_ids(ids)
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens: expected an int >= 0, got {max_new_tokens}")
    cache = None
    if use_cache:
        if not hasattr(model, "new_cache"):
            raise TypeError(f"model: use_cache=True needs a model with new_cache(), got {type(model).__name__}")
        cache = model.new_cache()
    pad = eos_token_id if pad_token_id is None else pad_token_id
    if stop is not None and pad is None:
        raise ValueError("pad_token_id: stopping criteria need a token to pad finished rows with, got None")
    finished = torch.zeros(ids.shape[0], dtype=torch.bool)
    for step in range(max_new_tokens):
        if cache is None:
            logits = next_token_logits(model, ids, context_length)
        else:
            with torch.no_grad():
                logits = model(ids if step == 0 else ids[:, -1:], cache)[:, -1, :].float()
        token = choose(ids, logits)
        if pad is not None:
            token = torch.where(finished, torch.full_like(token, pad), token)
        if eos_token_id is not None:
            finished |= token == eos_token_id
        ids = torch.cat([ids, token[:, None]], dim=1)
        if stop is not None:
            finished |= stop(ids)
        if finished.all():
            break
    return ids


def greedy(model: Model, ids: torch.Tensor, max_new_tokens: int, *, eos_token_id: int | None = None,
           pad_token_id: int | None = None, context_length: int | None = None,
           use_cache: bool = False) -> torch.Tensor:
    """Append the most likely token ``max_new_tokens`` times; rows that emitted ``eos_token_id``
    are padded with ``pad_token_id`` (default: the eos id). Returns ``(batch, seq + new)``."""
    return decode_loop(model, ids, max_new_tokens, lambda _, lg: lg.argmax(dim=-1),
                        eos_token_id, pad_token_id, context_length, use_cache)


def sample(model: Model, ids: torch.Tensor, max_new_tokens: int, *,
           temperature: float | torch.Tensor = 1.0,
           top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None, eos_token_id: int | None = None,
           pad_token_id: int | None = None, context_length: int | None = None,
           use_cache: bool = False) -> torch.Tensor:
    """Draw each next token from softmax(filtered logits); seeded by ``generator``.

    ``temperature`` may be a ``(batch,)`` tensor: one temperature per row (a sweep in one batch).
    """
    def choose(_, logits):
        probs = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p).softmax(-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]

    return decode_loop(model, ids, max_new_tokens, choose, eos_token_id, pad_token_id,
                        context_length, use_cache)


# --- beam search ------------------------------------------------------------------------------


Processors = Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | list | tuple | None


def beam_search(model: Model, ids: torch.Tensor, max_new_tokens: int, *, num_beams: int = 4,
                length_penalty: float = 1.0, eos_token_id: int | None = None,
                early_stopping: bool = False, context_length: int | None = None,
                processors: Processors = None, num_return_sequences: int = 1,
                use_cache: bool = False) -> list[torch.Tensor]:
    """Beam search, one prompt row at a time; returns the ``num_return_sequences`` best sequences of
    each row (prompt included), best first: a flat list of ``batch * num_return_sequences`` tensors.

    Each step turns every live beam's logits into log-probabilities, runs them through
    ``processors`` (a callable ``(ids, scores) -> scores`` such as a ``LogitsPipeline``, or a list of
    them, applied in order: transformers' order, so a repetition penalty multiplies the negative
    log-probabilities of seen tokens and an n-gram ban sets banned ones to -inf), adds each beam's
    total, and keeps the ``2 * num_beams`` best extensions. Those among the top ``num_beams`` that end
    in ``eos_token_id`` (or reach the length limit) go to a pool of finished hypotheses scored
    ``total / generated_len ** length_penalty``; the search continues with the ``num_beams`` best
    unfinished ones. It stops when the pool is full and no live beam can beat its worst entry (or,
    with ``early_stopping``, as soon as the pool is full).

    With ``use_cache=True`` (a model with ``new_cache()``, like ours) the prompt is fed once, then
    only each beam's newest token; the layers' key/value caches (``.k``, ``.v``, batch first) are
    reordered to follow the beams that survive each step, as transformers' ``reorder_cache`` does.
    """
    _check_ids(ids)
    if use_cache and not hasattr(model, "new_cache"):
        raise TypeError(f"model: use_cache=True needs a model with new_cache(), got {type(model).__name__}")
    if not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams: expected an int >= 1, got {num_beams!r}")
    if not isinstance(num_return_sequences, int) or not 1 <= num_return_sequences <= num_beams:
        raise ValueError(f"num_return_sequences: expected an int in [1, num_beams = {num_beams}], "
                         f"got {num_return_sequences!r}")
    process = _chain(processors)
    return [seq for row in ids
            for seq in _beam_search_row(model, row[None], max_new_tokens, num_beams, length_penalty,
                                        eos_token_id, early_stopping, context_length, process,
                                        num_return_sequences, use_cache)]


def _chain(processors: Processors):
    """One ``(ids, scores) -> scores`` callable from a callable, a list of callables, or None."""
    if processors is None:
        return None
    if callable(processors) and not isinstance(processors, (list, tuple)):
        return processors
    if not isinstance(processors, (list, tuple)) or not all(callable(p) for p in processors):
        raise TypeError(f"processors: expected a callable (ids, scores) -> scores or a list of them, "
                        f"got {type(processors).__name__}")

    def run(seen, scores):
        for p in processors:
            scores = p(seen, scores)
        return scores

    return run


def _beam_logits(model, beams, cache, source, context_length):
    """Next-token logits of every live beam: from scratch, or from the newest token and a cache
    whose rows are first reordered to ``source`` (the beam each live beam grew from)."""
    if cache is None:
        return next_token_logits(model, beams, context_length)
    if source is not None:
        index = torch.tensor(source)
        for layer in cache:
            layer.k, layer.v = layer.k[index], layer.v[index]
    with torch.no_grad():
        return model(beams if source is None else beams[:, -1:], cache)[:, -1, :].float()


def _beam_search_row(model, prompt, max_new_tokens, num_beams, length_penalty, eos_token_id,
                     early_stopping, context_length, process=None, n_return=1, use_cache=False):
    beams = prompt  # (live beams, seq): a single beam at first
    scores = torch.zeros(1)
    finished: list[tuple[float, torch.Tensor]] = []  # (normalised score, sequence), best first
    cache, source = (model.new_cache() if use_cache else None), None
    for step in range(max_new_tokens):
        logp = F.log_softmax(_beam_logits(model, beams, cache, source, context_length), dim=-1)
        if process is not None:
            logp = process(beams, logp)
        vocab = logp.shape[-1]
        total = (logp + scores[:, None]).flatten()
        n_keep = min(2 * num_beams, total.numel())
        top_scores, top_idx = torch.topk(total, n_keep)
        generated = step + 1
        last_step = generated == max_new_tokens
        pool_was_full = len(finished) == num_beams
        live = []
        for rank, (score, idx) in enumerate(zip(top_scores.tolist(), top_idx.tolist())):
            seq = torch.cat([beams[idx // vocab], torch.tensor([idx % vocab])])
            if idx % vocab == eos_token_id or last_step:
                if rank < num_beams and not (early_stopping and pool_was_full):
                    finished.append((score / generated**length_penalty, seq))
                    finished = sorted(finished, key=lambda t: -t[0])[:num_beams]
            elif len(live) < num_beams:
                live.append((score, seq, idx // vocab))
        if last_step or not live:
            break
        beams = torch.stack([s for _, s, _ in live])
        scores = torch.tensor([sc for sc, _, _ in live])
        source = [b for _, _, b in live]
        if len(finished) == num_beams:
            if early_stopping:
                break
            best_possible = scores[0].item() / generated**length_penalty
            if best_possible <= finished[-1][0]:
                break
    # the pool holds num_beams hypotheses unless the search ran out of steps early (or had none)
    out = [seq for _, seq in finished] + list(beams)
    return out[:n_return]


__all__ = [
    "apply_temperature",
    "beam_search",
    "decode_loop",
    "filter_logits",
    "greedy",
    "next_token_logits",
    "sample",
    "top_k_filter",
    "top_p_filter",
]
