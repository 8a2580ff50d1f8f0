"""The checks of chapter 12's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (the library's parallel linear
attention; the library's load-balancing loss, equal to transformers') and declares, as small wrong
implementations, the mistakes it names in plain words ("likely mistake: ...").
Exercise 12.2 is a "predict, then measure" exercise: its check compares a prediction with a
measurement and needs no declared mistakes.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from roadmap_lib.efficient.linear import linear_attention
from roadmap_lib.efficient.moe import load_balancing_loss
from roadmap_lib.exercises import check_function

# ---- exercise 12.1: one step of linear attention -------------------------------------------------


def run_steps(step, q, k, v):
    """Run ``step(S, z, q_t, k_t, v_t) -> (o_t, S, z)`` over a sequence from a zero state."""
    S = q.new_zeros(*q.shape[:2], q.shape[-1], v.shape[-1])
    z = q.new_zeros(*q.shape[:2], q.shape[-1])
    outs = []
    for t in range(q.shape[2]):
        o, S, z = step(S, z, q[:, :, t], k[:, :, t], v[:, :, t])
        outs.append(o)
    return torch.stack(outs, dim=2)


def _step(S, z, q_t, k_t, v_t, *, read_first=False, plus_one=True, normalise=True, accumulate_z=True):
    phi_q, phi_k = F.elu(q_t) + plus_one, F.elu(k_t) + plus_one
    S_new = S + phi_k[..., :, None] * v_t[..., None, :]
    z_new = z + phi_k if accumulate_z else phi_k
    S_read, z_read = (S, z) if read_first else (S_new, z_new)
    o = (phi_q[..., :, None] * S_read).sum(-2)
    if normalise:
        o = o / (phi_q * z_read).sum(-1, keepdim=True)
    return o, S_new, z_new


def _run(**how):
    return lambda q, k, v: run_steps(lambda *a: _step(*a, **how), q, k, v)


LINEAR_STEP_MISTAKES = {
    "the state is read before it is updated: token t must see its own key and value (at t = 0 this "
    "divides 0 by 0)": _run(read_first=True),
    "phi is elu without the + 1: the features must be positive": _run(plus_one=False),
    "the output is not normalised: divide by phi(q_t) . z": _run(normalise=False),
    "z is replaced, not accumulated: it must gain phi(k_t) at every step": _run(accumulate_z=False),
}


def check_linear_step(fn) -> None:
    """Exercise 12.1: ``fn(S, z, q_t, k_t, v_t)``, run over whole sequences from a zero state,
    against the parallel (quadratic) form of causal linear attention."""
    gen = torch.Generator().manual_seed(5)
    cases = []
    for b, h, length, d, dv in [(1, 1, 6, 4, 3), (2, 3, 20, 8, 5)]:
        qkv = [torch.randn(b, h, length, dd, generator=gen, dtype=torch.float64) for dd in (d, d, dv)]
        cases.append((qkv, linear_attention(*qkv)))
    check_function(lambda q, k, v: run_steps(fn, q, k, v), cases, name="linear_step, run over the sequence",
                   atol=1e-10, mistakes=LINEAR_STEP_MISTAKES)


# ---- exercise 12.3: the load-balancing loss ------------------------------------------------------


def _switch(logits, k, *, factor=True, softmax_dim=-1, probs_from_logits=False, per_choice=False, top1=False):
    n_tokens, n_experts = logits.shape
    probs = logits.softmax(softmax_dim)
    chosen = probs.topk(1 if top1 else k, dim=-1).indices
    f = F.one_hot(chosen, n_experts).sum(1).double().mean(0) / (k if per_choice else 1)
    P = (logits if probs_from_logits else probs).double().mean(0)
    return (n_experts if factor else 1) * (f * P).sum()


SWITCH_MISTAKES = {
    "the factor E (the number of experts) is missing": lambda x, k: _switch(x, k, factor=False),
    "the softmax runs over the tokens (dim 0), not over the experts": lambda x, k: _switch(x, k, softmax_dim=0),
    "P_i is the mean of the raw logits: it is the mean of the softmax probabilities":
        lambda x, k: _switch(x, k, probs_from_logits=True),
    "f_i is divided by tokens x k: transformers divides the number of choices by the number of tokens only "
    "(so f sums to k)": lambda x, k: _switch(x, k, per_choice=True),
    "f_i counts only each token's first choice: it counts all k choices":
        lambda x, k: _switch(x, k, top1=True),
}


def check_switch_loss(fn) -> None:
    """Exercise 12.3: ``fn(router_logits, k)`` against the library's ``load_balancing_loss`` (equal
    to transformers' ``load_balancing_loss_func``, tests/test_efficient_moe.py); the answer may call
    neither (transformers' is refused when the notebook has imported it)."""
    forbid = [load_balancing_loss]
    mixtral = sys.modules.get("transformers.models.mixtral.modeling_mixtral")
    if mixtral is not None:
        forbid.append(mixtral.load_balancing_loss_func)
    gen = torch.Generator().manual_seed(6)
    cases = []
    for n_tok, n_exp, k in [(10, 4, 1), (50, 8, 2), (7, 3, 3), (40, 6, 2)]:
        logits = 2 * torch.randn(n_tok, n_exp, generator=gen)
        cases.append(((logits, k), load_balancing_loss(logits, k)))
    check_function(fn, cases, name="switch_loss", mistakes=SWITCH_MISTAKES, forbid=forbid)
