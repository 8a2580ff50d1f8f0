"""The checks of chapter 07's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (``F.cross_entropy``, the library's
``top_p_filter``, parameter counts of real ``GPT`` modules, ``torch.multinomial``) and declares, as
small wrong implementations, the mistakes it names in plain words ("likely mistake: ...").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from roadmap_lib.exercises import check_function
from roadmap_lib.generation import top_p_filter
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
