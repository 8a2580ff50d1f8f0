"""The checks of chapter 20's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (from the core modules), so the
notebook holds no reference a student could call.
"""

from __future__ import annotations

import math

import torch

from roadmap_lib.exercises import check_close, check_function
from roadmap_lib.fairness import association
from roadmap_lib.watermark import detect, green_table

# ---- exercise 20.1: the watermark detector --------------------------------------------------


def _z(ids, table, *, shift=1, gamma=None, var="binomial", n_all=False):
    V = table.shape[1]
    g = int(table[0].sum()) / V if gamma is None else gamma
    if shift == 1:
        green = table[ids[:, :-1], ids[:, 1:]].sum(1).double()
        n = ids.shape[1] if n_all else ids.shape[1] - 1
    else:  # the token's own green list instead of its predecessor's
        green = table[ids, ids].sum(1).double()
        n = ids.shape[1]
    sd = math.sqrt(n * g * (1 - g)) if var == "binomial" else math.sqrt(n * g)
    return (green - g * n) / sd


WATERMARK_MISTAKES = {
    "the green list is looked up with the token itself, not with its predecessor": lambda ids, t: _z(ids, t, shift=0),
    "the variance is n·γ instead of n·γ·(1 − γ)": lambda ids, t: _z(ids, t, var="poisson"),
    "γ is taken as 0.5 instead of the table's green share": lambda ids, t: _z(ids, t, gamma=0.5),
    "n counts every token: the first one has no predecessor, so only seq − 1 tokens are scored":
        lambda ids, t: _z(ids, t, n_all=True),
}


def watermark_cases():
    cases = []
    for seed, vocab, gamma, shape in [(0, 12, 0.25, (3, 40)), (1, 30, 0.5, (2, 17)), (2, 9, 0.75, (4, 25))]:
        table = green_table(vocab, gamma, key=seed)
        ids = torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))
        cases.append(((ids, table), detect(ids, table)))
    return cases


def check_watermark_z(fn) -> None:
    """``fn(ids (batch, seq), table (V, V) bool) -> z (batch,)``: every token after the first scored."""
    check_function(fn, watermark_cases(), name="watermark_z", atol=1e-6, mistakes=WATERMARK_MISTAKES)


# ---- exercise 20.2: the WEAT association ----------------------------------------------------

def _cos(U, V):
    return torch.nn.functional.normalize(U, dim=-1) @ torch.nn.functional.normalize(V, dim=-1).T


ASSOCIATION_MISTAKES = {
    "dot products instead of cosines (the vectors are not normalised)":
        lambda W, A, B: (W @ A.T).mean(1) - (W @ B.T).mean(1),
    "sums over the attribute words instead of means": lambda W, A, B: _cos(W, A).sum(1) - _cos(W, B).sum(1),
    "A and B swapped (the sign is flipped)": lambda W, A, B: -association(W, A, B),
}


def association_cases():
    cases = []
    for seed, (nw, na, nb, d) in enumerate([(3, 4, 4, 8), (5, 2, 2, 3), (1, 6, 6, 16)]):
        g = torch.Generator().manual_seed(seed)
        W, A, B = (torch.randn(n, d, generator=g) * 3 for n in (nw, na, nb))
        cases.append(((W, A, B), association(W, A, B)))
    return cases


def check_association(fn) -> None:
    """``fn(W (n, d), A (a, d), B (b, d)) -> (n,)``: mean cosine to A minus mean cosine to B."""
    check_function(fn, association_cases(), name="association", atol=1e-5, mistakes=ASSOCIATION_MISTAKES)


# ---- exercise 20.3: predict, then measure -----------------------------------------------------


def check_prediction(prediction: float, measured: float, study: dict, delta: float, length: int,
                     threshold: float) -> None:
    """The measured detection rate must be the one the study gives; the prediction is compared."""
    z = torch.cat([study["z"][delta, s][length] for s in study["seeds"]])
    truth = float((z > threshold).double().mean())
    check_close(measured, truth, name=f"detection rate at δ={delta:g}, {length} chars, z > {threshold:g}",
                atol=1e-9)
    if not 0.0 <= prediction <= 1.0:
        raise ValueError(f"prediction: expected a share between 0 and 1, got {prediction!r}")
    print(f"you predicted {prediction:.2f}; the measurement is {truth:.2f} "
               f"({'within' if abs(prediction - truth) <= 0.1 else 'off by more than'} 0.1).")


__all__ = ["check_association", "check_prediction", "check_watermark_z"]
