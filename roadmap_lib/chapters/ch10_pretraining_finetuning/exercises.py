"""The checks of chapter 10's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (nothing a student could call is in the
notebook's namespace) and declares the usual wrong answers as small functions.
"""

from __future__ import annotations

import torch

from roadmap_lib.chapters.ch10_pretraining_finetuning.instruct import mask_prompt_targets
from roadmap_lib.exercises import check_function, check_true
from roadmap_lib.objectives import prefix_lm_mask
from roadmap_lib.optim import Adafactor, optimizer_state_nbytes

# ---- exercise 10.1: weights of accumulated micro-batch losses -----------------------------------

ACCUMULATION_MISTAKES = {
    "each micro-batch is divided by the number of micro-batches (1/k): right only when every "
    "micro-batch has the same number of real tokens":
        lambda n: torch.full((len(n),), 1.0 / len(n), dtype=torch.float64),
    "the weights are the token counts themselves, not their share of the total":
        lambda n: n.to(torch.float64),
    "each weight is 1 / (tokens of that micro-batch), which cancels its mean instead of weighting it":
        lambda n: 1.0 / n.to(torch.float64),
}


def check_accumulation_weights(fn) -> None:
    """Exercise 10.1: ``fn(n_targets)`` (int tensor (k,)) -> float tensor (k,) of weights ``w_i`` such
    that ``sum_i w_i * mean_loss_i`` is the mean loss over all tokens of the batch."""
    cases = []
    for n in ([10, 10, 10], [5, 40, 15, 20], [1, 99], [7]):
        n = torch.tensor(n)
        cases.append(((n,), n.to(torch.float64) / n.sum()))
    check_function(fn, cases, mistakes=ACCUMULATION_MISTAKES, rtol=1e-6, atol=1e-9)
    g = torch.Generator().manual_seed(0)
    losses = [torch.rand(int(k), generator=g, dtype=torch.float64) for k in (5, 40, 15, 20)]
    w = torch.as_tensor(fn(torch.tensor([5, 40, 15, 20])), dtype=torch.float64)
    got = sum(wi * li.mean() for wi, li in zip(w, losses))
    full = torch.cat(losses).mean()
    check_true(abs(float(got - full)) < 1e-12, fail=f"weighted micro-batch means give {float(got):.6f}, "
               f"the full batch's mean is {float(full):.6f}",
               success="the weighted micro-batch means equal the mean over every token of the batch")


# ---- exercise 10.2: the document-causal mask ----------------------------------------------------

def _mask(doc_ids, *, same=True, causal=True, future=False):
    L = doc_ids.shape[-1]
    m = torch.ones(L, L, dtype=torch.bool)
    if same:
        m = m & (doc_ids[:, None] == doc_ids[None, :])
    if causal:
        tri = torch.ones(L, L, dtype=torch.bool)
        m = m & (tri.triu() if future else tri.tril())
    return m


DOC_MASK_MISTAKES = {
    "the document boundaries are missing: that is the plain causal mask, tokens see earlier documents":
        lambda d: _mask(d, same=False),
    "the causal part is missing: tokens see the rest of their own document, future included":
        lambda d: _mask(d, causal=False),
    "the triangle is the wrong way round (j >= i): each token sees its future, not its past":
        lambda d: _mask(d, future=True),
}


def check_document_mask(fn) -> None:
    """Exercise 10.2: ``fn(doc_ids)`` (int tensor (L,)) -> bool (L, L), True where query i may attend key j."""
    cases = [((torch.tensor(d),), _mask(torch.tensor(d)))
             for d in ([0, 0, 0, 1, 1], [0, 1, 1, 1, 2, 2, 3, -1, -1], [4, 4, 4, 4], [0, 1, 2])]
    check_function(fn, cases, mistakes=DOC_MASK_MISTAKES)


# ---- exercise 10.3: Adafactor's state, predicted then measured ----------------------------------

ADAFACTOR_MISTAKES = {
    "matrices are counted as a full second moment (rows x columns): Adafactor keeps a row and a "
    "column vector instead":
        lambda shapes: torch.tensor(4 * sum(_numel(s) for s in shapes)),
    "this counts two full moments per value, AdamW's state, not Adafactor's":
        lambda shapes: torch.tensor(8 * sum(_numel(s) for s in shapes)),
    "the answer is in floats, not bytes (float32: 4 bytes each)":
        lambda shapes: torch.tensor(sum(_factored(s) for s in shapes)),
}


def _numel(shape) -> int:
    out = 1
    for n in shape:
        out *= n
    return out


def _factored(shape) -> int:
    if len(shape) < 2:
        return _numel(shape)
    lead = _numel(shape[:-2])
    return lead * (shape[-2] + shape[-1])


def measured_adafactor_bytes(shapes) -> int:
    """Run one step of our Adafactor (defaults) on zero-initialised parameters of these shapes."""
    params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    for p in params:
        p.grad = torch.ones_like(p)
    opt = Adafactor(params)
    opt.step()
    return optimizer_state_nbytes(opt)


def check_adafactor_bytes(fn) -> None:
    """Exercise 10.3: ``fn(shapes)`` (a list of parameter shapes) -> bytes of Adafactor's state with
    the paper's defaults (no first moment), compared with a measurement."""
    cases = []
    for shapes in ([(128, 64)], [(512,), (128, 512)], [(3005, 128), (128,), (256, 128), (2, 8, 16)]):
        cases.append(((shapes,), torch.tensor(measured_adafactor_bytes(shapes))))
    check_function(fn, cases, mistakes=ADAFACTOR_MISTAKES, rtol=0, atol=0.5)


# ---- exercise 10.4: the prefix-LM mask ----------------------------------------------------------

def _ij(L):
    return torch.arange(L)[:, None], torch.arange(L)[None, :]


PREFIX_MASK_MISTAKES = {
    "the prefix is ignored: that is the plain causal mask, prefix positions do not see the later "
    "prefix words":
        lambda p, L: _ij(L)[1] <= _ij(L)[0],
    "prefix positions see the whole row, targets included: the answer leaks into the prefix":
        lambda p, L: (_ij(L)[1] <= _ij(L)[0]) | (_ij(L)[0] < p),
    "off by one at the boundary (j <= P): every position also sees the first target":
        lambda p, L: (_ij(L)[1] <= _ij(L)[0]) | (_ij(L)[1] <= p),
    "the triangle is the wrong way round (j >= i): target positions see their future":
        lambda p, L: (_ij(L)[1] >= _ij(L)[0]) | (_ij(L)[1] < p),
}


def check_prefix_mask(fn) -> None:
    """Exercise 10.4: ``fn(prefix_len, L)`` -> bool (L, L), True where query i may attend key j in a
    prefix LM whose first ``prefix_len`` positions are the prefix."""
    cases = [((p, L), prefix_lm_mask(torch.tensor([p]), L)[0, 0]) for p, L in ((3, 6), (1, 5), (0, 4), (5, 5), (2, 9))]
    check_function(fn, cases, mistakes=PREFIX_MASK_MISTAKES, forbid=[prefix_lm_mask])


# ---- exercise 10.5: the loss mask of instruction tuning -------------------------------------------

def _targets(ids, prompt_len, masked):
    t = ids[1:].clone()
    t[:masked] = -100
    return t


RESPONSE_MASK_MISTAKES = {
    "the prompt is not masked: the loss also trains the model to write the instructions":
        lambda ids, p: ids[1:].clone(),
    "off by one: the first response token is masked too (-100 at prompt_len positions); the model is "
    "never taught how to start its answer":
        lambda ids, p: _targets(ids, p, p),
    "off by one the other way: the last prompt token is still a target (-100 at prompt_len - 2 "
    "positions only)":
        lambda ids, p: _targets(ids, p, max(p - 2, 0)),
    "the mask is inverted: the response carries -100 and the prompt carries the loss":
        lambda ids, p: torch.where(torch.arange(len(ids) - 1) < p - 1, ids[1:], torch.full_like(ids[1:], -100)),
    "the targets are not shifted: position t must predict the next token ids[t + 1], not ids[t] "
    "(so there are len(ids) - 1 targets)":
        lambda ids, p: torch.where(torch.arange(len(ids)) < p, torch.full_like(ids, -100), ids),
}


def check_response_targets(fn) -> None:
    """Exercise 10.5: ``fn(ids, prompt_len)`` (int tensor (L,), prompt then response) -> int tensor
    (L - 1,) of next-token targets with -100 wherever the next token is part of the prompt."""
    g = torch.Generator().manual_seed(5)
    cases = []
    for L, p in ((6, 3), (9, 1), (7, 6), (12, 5), (4, 2)):
        ids = torch.randint(0, 50, (L,), generator=g)
        cases.append(((ids, p), mask_prompt_targets(ids, p)))
    check_function(fn, cases, mistakes=RESPONSE_MASK_MISTAKES, forbid=[mask_prompt_targets], atol=0, rtol=0)
    ids = torch.arange(10, 20)
    scored = int((torch.as_tensor(fn(ids, 4)) != -100).sum())
    check_true(scored == 6, fail=f"a 10-token row with a 4-token prompt must score its 6 response tokens, got {scored}",
               success="only the response tokens carry loss: a 10-token row with a 4-token prompt scores 6 targets")
