"""The checks of chapter 09's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (the notebook does not hold the
reference, so a student cannot pass by calling it): exercise 09.1's reference is a measurement by
:class:`torch.utils.flop_counter.FlopCounterMode`, exercise 09.3's a numerical minimisation.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from roadmap_lib.exercises import check_function
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.objectives import lm_loss

# ---- exercise 09.1: the FLOPs of one training step -----------------------------------------------

FLOP_CASES = [(1, 16, 50, 2, 8), (2, 32, 97, 3, 16), (3, 24, 138, 1, 32)]


def _flops(n_layers, d_model, vocab_size, batch, seq, *, passes=3, head=True, attention=1.0):
    t = batch * seq
    per_layer = 2 * t * 12 * d_model**2 + attention * 4 * batch * seq * seq * d_model
    return int(passes * (n_layers * per_layer + (2 * t * d_model * vocab_size if head else 0)))


FLOP_MISTAKES = {
    "only the forward pass is counted (the backward pass costs twice the forward: ×3 in all)":
        lambda *a: _flops(*a, passes=1),
    "the backward pass is counted once more instead of twice (×2 instead of ×3)":
        lambda *a: _flops(*a, passes=2),
    "the lm_head (d_model × vocab_size matmul per token) is missing":
        lambda *a: _flops(*a, head=False),
    "the attention scores and weighted sum (two seq × seq × d_model products per layer) are missing":
        lambda *a: _flops(*a, attention=0.0),
    "attention is halved as for a causal mask, but the model computes the full seq × seq products":
        lambda *a: _flops(*a, attention=0.5),
}


def measured_flops(n_layers, d_model, vocab_size, batch, seq) -> int:
    """FlopCounterMode's count of one forward and backward pass of GPT on random ids."""
    cfg = GPTConfig(vocab_size=vocab_size, context_length=seq, d_model=d_model, n_layers=n_layers,
                    n_heads=max(1, d_model // 8))
    model = GPT(cfg)
    ids = torch.randint(0, vocab_size, (batch, seq + 1), generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as fc:
        lm_loss(model, ids[:, :-1], ids[:, 1:]).backward()
    return fc.get_total_flops()


def _as_float(f):
    return lambda *a: torch.tensor(float(f(*a)), dtype=torch.float64)


def check_step_flops(fn) -> None:
    """Exercise 09.1: ``fn(n_layers, d_model, vocab_size, batch, seq)`` is the measured count."""
    cases = [(args, torch.tensor(measured_flops(*args), dtype=torch.float64)) for args in FLOP_CASES]
    check_function(_as_float(fn), cases, name=getattr(fn, "__name__", "step_flops"), rtol=1e-9,
                   atol=0.5, mistakes={k: _as_float(v) for k, v in FLOP_MISTAKES.items()})


# ---- exercise 09.3: the compute-optimal allocation ------------------------------------------------

OPTIMAL_CASES = [(1.69, 406.4, 410.7, 0.34, 0.28, 1e21), (1.0, 50.0, 80.0, 0.5, 0.3, 1e9),
                 (2.0, 10.0, 300.0, 0.2, 0.6, 1e15)]


def numerical_optimum(E, A, B, alpha, beta, C) -> torch.Tensor:
    """``[N*, D*]`` by minimising L(N, C/(6N)) over log N (golden-section search)."""
    def loss(log_n):
        n = torch.exp(torch.tensor(log_n, dtype=torch.float64))
        return (E + A / n**alpha + B / (C / (6 * n)) ** beta).item()

    lo, hi = 0.0, float(torch.log(torch.tensor(C / 6.0, dtype=torch.float64)))
    r = (5**0.5 - 1) / 2
    for _ in range(200):
        a, b = hi - r * (hi - lo), lo + r * (hi - lo)
        if loss(a) < loss(b):
            hi = b
        else:
            lo = a
    n = torch.exp(torch.tensor((lo + hi) / 2, dtype=torch.float64))
    return torch.stack([n, C / (6 * n)])


def _closed(E, A, B, alpha, beta, C, *, swap=False, six=True, g_inverted=False):
    a, b = (alpha, beta) if not swap else (beta, alpha)
    g = (a * A / (b * B)) ** (1 / (a + b))
    g = 1 / g if g_inverted else g
    c = C / 6 if six else C
    return torch.tensor([g * c ** (b / (a + b)), c ** (a / (a + b)) / g], dtype=torch.float64)


OPTIMAL_MISTAKES = {
    "the exponents are swapped: N* grows as C**(β/(α+β)), D* as C**(α/(α+β))":
        lambda *a: _closed(*a, swap=True),
    "C is used where C/6 belongs (C = 6·N·D)": lambda *a: _closed(*a, six=False),
    "G is inverted: G = (αA / (βB))**(1/(α+β)) multiplies N* and divides D*":
        lambda *a: _closed(*a, g_inverted=True),
}


def check_compute_optimal(fn) -> None:
    """Exercise 09.3: ``fn(E, A, B, alpha, beta, C) -> (N*, D*)`` minimises L under C = 6·N·D."""
    cases = [(args, numerical_optimum(*args)) for args in OPTIMAL_CASES]
    check_function(lambda *a: torch.as_tensor([float(v) for v in fn(*a)], dtype=torch.float64),
                   cases, name=getattr(fn, "__name__", "compute_optimal"), rtol=1e-5, atol=0,
                   mistakes=OPTIMAL_MISTAKES)


__all__ = ["FLOP_MISTAKES", "OPTIMAL_MISTAKES", "check_compute_optimal", "check_step_flops",
           "measured_flops", "numerical_optimum"]
