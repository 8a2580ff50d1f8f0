"""The checks of chapter 07's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (``F.cross_entropy``, the library's
``top_p_filter``, parameter counts of real ``GPT`` modules, ``torch.multinomial``) and declares, as
small wrong implementations, the mistakes it names in plain words ("likely mistake: ...").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from roadmap_lib.exercises import check_function, check_true
from roadmap_lib.generation import greedy, top_p_filter
from roadmap_lib.models import GPT, GPTConfig

# ---- exercise 07.1: the next-token loss ----------------------------------------------------------


def _nll(logp, targets):
    return -logp.gather(-1, targets[..., None]).mean()


CAUSAL_LM_LOSS_MISTAKES = {
    "the targets are not shifted: the logits at position t predict the NEXT id, so the targets are "
    "ids[:, 1:], not ids[:, :-1]":
        lambda lg, ids: _nll(lg.log_softmax(-1), ids[:, :-1]),
    "the log-softmax runs over the positions (dim 1), not over the vocabulary (dim -1)":
        lambda lg, ids: _nll(lg.log_softmax(1), ids[:, 1:]),
    "the minus sign is missing: the loss is the NEGATIVE mean log-probability of the targets":
        lambda lg, ids: -_nll(lg.log_softmax(-1), ids[:, 1:]),
    "the log-probabilities are summed, not averaged over the batch and the positions":
        lambda lg, ids: _nll(lg.log_softmax(-1), ids[:, 1:]) * ids[:, 1:].numel(),
    "the raw logits are used as log-probabilities: apply log_softmax first":
        lambda lg, ids: _nll(lg, ids[:, 1:]),
    "softmax instead of log_softmax: the loss needs the LOG-probabilities":
        lambda lg, ids: _nll(lg.softmax(-1), ids[:, 1:]),
}


def check_causal_lm_loss(fn) -> None:
    """Exercise 07.1: ``fn(logits, ids)``, the mean cross-entropy of predicting ``ids[:, 1:]``."""
    cases = []
    for seed, (b, s, v) in enumerate([(1, 32, 65), (4, 9, 11), (3, 1, 7)]):
        g = torch.Generator().manual_seed(seed)
        logits, ids = 3 * torch.randn(b, s, v, generator=g), torch.randint(v, (b, s + 1), generator=g)
        cases.append(((logits, ids), F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())))
    check_function(fn, cases, name="causal_lm_loss", mistakes=CAUSAL_LM_LOSS_MISTAKES)


# ---- exercise 07.2: nucleus (top-p) filtering ----------------------------------------------------


def _top_p(logits, p, *, strict=False, keep_first=True, scatter=True, sort=True, descending=True,
           fill=float("-inf")):
    if sort:
        sorted_logits, order = logits.sort(dim=-1, descending=descending)
    else:
        sorted_logits, order = logits, torch.arange(logits.shape[-1]).expand_as(logits)
    probs = sorted_logits.softmax(-1)
    cumulative = probs.cumsum(-1)
    remove = cumulative >= p if strict else (cumulative - probs) >= p
    if keep_first:
        remove[..., 0] = False
    mask = torch.zeros_like(remove).scatter(-1, order, remove) if scatter else remove
    return logits.masked_fill(mask, fill)


TOP_P_MISTAKES = {
    "the token that crosses p is dropped: a token goes only when the mass BEFORE it already reaches p":
        lambda x, p: _top_p(x, p, strict=True),
    "the most likely token is not always kept (with p = 0 every token is removed)":
        lambda x, p: _top_p(x, p, keep_first=False),
    "the decision is not scattered back: the mask built on the sorted row is applied to the unsorted "
    "logits":
        lambda x, p: _top_p(x, p, scatter=False),
    "the probabilities are accumulated in the vocabulary's order: sort each row first, most likely "
    "token first":
        lambda x, p: _top_p(x, p, sort=False),
    "the row is sorted in ascending order: the nucleus is built from the most likely tokens":
        lambda x, p: _top_p(x, p, descending=False),
    "the removed tokens get the logit 0, not -inf (a logit of 0 still has a probability)":
        lambda x, p: _top_p(x, p, fill=0.0),
}


def check_top_p(fn) -> None:
    """Exercise 07.2: ``fn(logits, p)`` keeps each row's nucleus and sets the rest to -inf."""
    g = torch.Generator().manual_seed(0)
    cases = [((x, p), top_p_filter(x, p)) for x, p in
             [(torch.randn(3, 20, generator=g) * 2, 0.3), (torch.randn(3, 20, generator=g) * 2, 0.7),
              (torch.randn(5, 50, generator=g) * 2, 0.95), (torch.randn(2, 10, generator=g), 0.0)]]
    check_function(fn, cases, name="my_top_p", mistakes=TOP_P_MISTAKES, forbid=[top_p_filter])


# ---- exercise 07.3: counting parameters ----------------------------------------------------------


def _count(v, c, d, n, *, head=False, biases=True, ln_bias=True, final_ln=True, positions=True, ff=4,
           projections=4):
    ln = 2 * d if ln_bias else d
    attn = projections * (d * d + (d if biases else 0))
    mlp = 2 * ff * d * d + ((ff * d + d) if biases else 0)
    per_block = 2 * ln + attn + mlp
    return v * d * (2 if head else 1) + (c * d if positions else 0) + n * per_block + (ln if final_ln else 0)


GPT_PARAMS_MISTAKES = {
    "the tied output head is counted again: it shares the token embedding's matrix":
        lambda *a: _count(*a, head=True),
    "the biases of the linear layers are left out": lambda *a: _count(*a, biases=False),
    "the LayerNorms are counted with a weight only: each also has a bias": lambda *a: _count(*a, ln_bias=False),
    "the final LayerNorm is left out": lambda *a: _count(*a, final_ln=False),
    "the position embeddings are left out: the GPT learns one vector per position":
        lambda *a: _count(*a, positions=False),
    "the feed-forward width is d, not 4d": lambda *a: _count(*a, ff=1),
    "the attention output projection is left out: q, k, v AND o are four d x d projections":
        lambda *a: _count(*a, projections=3),
}


def check_gpt_num_params(fn) -> None:
    """Exercise 07.3: ``fn(vocab_size, context_length, d_model, n_layers)`` against ``GPT`` modules
    built with those sizes, and GPT-2 small's released count."""
    cases = [(s, torch.tensor(GPT(GPTConfig(vocab_size=s[0], context_length=s[1], d_model=s[2], n_layers=s[3],
                                            n_heads=4)).num_parameters()))
             for s in [(65, 64, 128, 4), (100, 32, 48, 3)]]
    cases.append(((50257, 1024, 768, 12), torch.tensor(124_439_808)))  # GPT-2 small, as released
    check_function(fn, cases, name="gpt_num_params", mistakes=GPT_PARAMS_MISTAKES)


# ---- exercise 07.4: temperature sampling ---------------------------------------------------------

SAMPLE_MISTAKES = {
    "the logits are multiplied by the temperature: divide by it (a temperature below 1 sharpens)":
        lambda x, t, s: torch.multinomial((x * t).softmax(-1), 1, generator=torch.Generator().manual_seed(s))[:, 0],
    "the softmax runs over the batch (dim 0), not over the vocabulary":
        lambda x, t, s: torch.multinomial((x / t).softmax(0), 1, generator=torch.Generator().manual_seed(s))[:, 0],
    "the most likely token is taken (argmax): sampling draws with torch.multinomial":
        lambda x, t, s: (x / t).argmax(-1),
    "multinomial's extra dimension is kept: return shape (batch,), not (batch, 1)":
        lambda x, t, s: torch.multinomial((x / t).softmax(-1), 1, generator=torch.Generator().manual_seed(s)),
}


def check_sample_next(fn) -> None:
    """Exercise 07.4: ``fn(logits, temperature, generator)``; the check passes a freshly seeded
    generator per call, so that a declared mistake can be replayed with the same random draws."""
    def with_seed(logits, temperature, seed):
        return fn(logits, temperature, torch.Generator().manual_seed(seed))

    g = torch.Generator().manual_seed(1)
    cases = []
    for seed, (b, v, t) in enumerate([(64, 65, 0.7), (32, 20, 1.5), (8, 5, 1.0)]):
        logits = torch.randn(b, v, generator=g)
        draw = torch.multinomial(torch.softmax(logits / t, -1), 1, generator=torch.Generator().manual_seed(seed))
        cases.append(((logits, t, seed), draw[:, 0]))
    check_function(with_seed, cases, name="sample_next", mistakes=SAMPLE_MISTAKES)


# ---- exercise 07.5: predict, then measure: the work of generating, with and without a cache ------


def measured_positions(prompt_len: int, new_tokens: int, context_length: int, use_cache: bool) -> int:
    """How many token positions a GPT's forward passes take in, summed over every call, while
    ``greedy(model, ids, new_tokens, context_length=context_length, use_cache=use_cache)`` generates
    after a prompt of ``prompt_len`` tokens. Measured with a forward pre-hook on a small GPT with
    random weights and that context length (the count does not depend on the weights)."""
    for name, value in (("prompt_len", prompt_len), ("new_tokens", new_tokens),
                        ("context_length", context_length)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if prompt_len > context_length:
        raise ValueError(f"prompt_len: expected at most context_length={context_length}, got {prompt_len}")
    if use_cache and prompt_len + new_tokens - 1 > context_length:
        raise ValueError(f"new_tokens: with use_cache=True the cache holds at most context_length="
                         f"{context_length} positions, so prompt_len + new_tokens - 1 must fit; got "
                         f"{prompt_len} + {new_tokens} - 1")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, context_length=context_length, d_model=8, n_layers=1, n_heads=2)).eval()
    seen: list[int] = []
    hook = model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            greedy(model, torch.zeros(1, prompt_len, dtype=torch.long), new_tokens,
                   context_length=context_length, use_cache=use_cache)
    finally:
        hook.remove()
    return sum(seen)


def _positions(p, n, c, cache, *, crop=True, grow=True, first=0, cache_steps=None):
    if cache:
        return torch.tensor(p + (n - 1 if cache_steps is None else cache_steps(n)))
    lengths = [(p + s if grow else p) for s in range(first, n + first)]
    return torch.tensor(sum(min(x, c) if crop else x for x in lengths))


POSITIONS_MISTAKES = {
    "the window is ignored: without a cache each call feeds at most context_length tokens (the "
    "input is cropped to its last context_length)":
        lambda p, n, c, cache: _positions(p, n, c, cache, crop=False),
    "every call is counted as the prompt alone: without a cache the input grows by one token "
    "per generated token":
        lambda p, n, c, cache: _positions(p, n, c, cache, grow=False),
    "off by one: the calls see prompt_len, prompt_len + 1, ..., prompt_len + new_tokens - 1 tokens "
    "(the first sees the prompt alone, and the last token generated is never fed back in)":
        lambda p, n, c, cache: _positions(p, n, c, cache, first=1),
    "the cache is ignored: with use_cache=True the prompt is fed once, then one token per call":
        lambda p, n, c, cache: _positions(p, n, c, False),
    "with a cache, one call too many: after the prompt's call, new_tokens - 1 calls of one token "
    "each produce the rest":
        lambda p, n, c, cache: _positions(p, n, c, cache, cache_steps=lambda n: n),
}


def check_positions_processed(fn) -> None:
    """Exercise 07.5: ``fn(prompt_len, new_tokens, context_length, use_cache)`` predicts the positions
    the model takes in while generating; each case is compared with :func:`measured_positions`."""
    cases = [((p, n, c, cache), torch.tensor(measured_positions(p, n, c, cache)))
             for p, n, c, cache in [(3, 4, 16, False), (5, 20, 8, False), (12, 40, 64, False),
                                    (3, 4, 16, True), (12, 40, 64, True), (1, 1, 4, False)]]
    check_function(fn, cases, name="positions_processed", mistakes=POSITIONS_MISTAKES, rtol=0, atol=0.5)
    plain, cached = measured_positions(12, 53, 64, False), measured_positions(12, 53, 64, True)
    check_true(plain > 10 * cached, fail=f"expected the cache to save at least 10x, measured {plain / cached:.1f}x",
               success=f"measured: 53 characters after a 12-character prompt (filling the 64-character "
                       f"window) take {plain:,} positions without a cache and {cached:,} with one, "
                       f"{plain / cached:.0f} times fewer")
