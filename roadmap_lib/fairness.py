"""Association tests for embeddings and models: WEAT and a paired permutation test.

**WEAT** (Caliskan et al., 2017) asks whether two sets of *target* words ``X`` and ``Y`` (e.g. two
groups of names) sit differently close to two sets of *attribute* words ``A`` and ``B`` (e.g.
pleasant and unpleasant words) in an embedding space. With cosine similarity ``cos``:

    s(w, A, B) = mean_a cos(w, a) - mean_b cos(w, b)
    S(X, Y)    = sum_x s(x, A, B) - sum_y s(y, A, B)                        (test statistic)
    d          = (mean_x s(x) - mean_y s(y)) / std_{w in X u Y} s(w)        (effect size, sample std)

and the one-sided p-value is the share of equal-size re-partitions ``(X_i, Y_i)`` of ``X u Y``
whose statistic exceeds ``S(X, Y)``. The test treats the *words* as the random sample: its p-value
says nothing about other word lists, other seeds of the model or other corpora.

:func:`paired_permutation_test` is the matching test for *minimal pairs* (two sentences that differ
in one word): under "no difference" each pair's score gap is as likely to have either sign, so the
p-value is the share of random sign flips whose mean gap is at least as large in absolute value.
:func:`two_sample_permutation_test` compares the means of two unpaired samples the same way.
"""

from __future__ import annotations

import itertools
import math

import torch


def _check_set(name: str, x: torch.Tensor, dim: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{name}: expected a (n_words, dim) tensor with n_words >= 1, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name}: expected dim {dim} like X, got {x.shape[1]}")


def _cos(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    u = u.double() / u.double().norm(dim=-1, keepdim=True)
    v = v.double() / v.double().norm(dim=-1, keepdim=True)
    return u @ v.T


def association(W: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``s(w, A, B)`` for each row ``w`` of ``W`` ``(n, dim)`` -> ``(n,)`` float64."""
    for name, x in (("W", W), ("A", A), ("B", B)):
        _check_set(name, x, W.shape[1] if name != "W" else None)
    return _cos(W, A).mean(dim=1) - _cos(W, B).mean(dim=1)


def weat_effect_size(X: torch.Tensor, Y: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> float:
    """Caliskan et al.'s effect size ``d`` (between -2 and 2); each argument ``(n_words, dim)``."""
    _check_set("X", X)
    _check_set("Y", Y, X.shape[1])
    sx, sy = association(X, A, B), association(Y, A, B)
    spread = torch.cat([sx, sy]).std()
    if len(sx) + len(sy) < 3 or spread == 0:
        raise ValueError("X, Y: need at least 3 target words with different associations for a std")
    return float((sx.mean() - sy.mean()) / spread)


def weat_statistic(sx: torch.Tensor, sy: torch.Tensor) -> float:
    """``S(X, Y) = sum s(x) - sum s(y)`` from the associations of the two target sets."""
    return float(sx.sum() - sy.sum())


def weat_test(X: torch.Tensor, Y: torch.Tensor, A: torch.Tensor, B: torch.Tensor, *,
              n_permutations: int = 10_000, generator: torch.Generator | None = None) -> dict:
    """``{"effect_size", "statistic", "p_value", "exact"}`` of the WEAT.

    All ``C(|X|+|Y|, |X|)`` re-partitions are enumerated when there are at most ``n_permutations``
    of them (``exact=True``, the p-value is the share with a larger statistic); otherwise
    ``n_permutations`` random ones are drawn and ``p = (k + 1) / (n_permutations + 1)``.
    """
    if not isinstance(n_permutations, int) or n_permutations < 1:
        raise ValueError(f"n_permutations: expected an int >= 1, got {n_permutations!r}")
    effect = weat_effect_size(X, Y, A, B)
    s = torch.cat([association(X, A, B), association(Y, A, B)])
    nx, n = len(X), len(X) + len(Y)
    observed = weat_statistic(s[:nx], s[nx:])
    total = s.sum()
    if math.comb(n, nx) <= n_permutations:
        stats = torch.tensor([2 * float(s[list(idx)].sum()) - float(total)
                              for idx in itertools.combinations(range(n), nx)], dtype=torch.float64)
        p, exact = float((stats > observed + 1e-12).double().mean()), True
    else:
        order = torch.rand(n_permutations, n, generator=generator).argsort(dim=1)
        stats = 2 * s[order[:, :nx]].sum(dim=1) - total
        p, exact = (int((stats > observed + 1e-12).sum()) + 1) / (n_permutations + 1), False
    return {"effect_size": effect, "statistic": observed, "p_value": p, "exact": exact}


def paired_permutation_test(gaps: torch.Tensor, *, n_permutations: int = 10_000,
                            generator: torch.Generator | None = None) -> float:
    """Two-sided p-value that the mean of paired gaps ``(n_pairs,)`` is zero (random sign flips,
    ``p = (k + 1) / (n_permutations + 1)``)."""
    if not isinstance(gaps, torch.Tensor) or gaps.ndim != 1 or len(gaps) < 2:
        raise ValueError(f"gaps: expected a 1-D tensor of at least 2 paired differences, got "
                         f"{getattr(gaps, 'shape', type(gaps).__name__)}")
    if not isinstance(n_permutations, int) or n_permutations < 1:
        raise ValueError(f"n_permutations: expected an int >= 1, got {n_permutations!r}")
    gaps = gaps.double()
    signs = torch.randint(0, 2, (n_permutations, len(gaps)), generator=generator).double() * 2 - 1
    flipped = (signs * gaps).mean(dim=1).abs()
    k = int((flipped >= gaps.mean().abs() - 1e-12).sum())
    return (k + 1) / (n_permutations + 1)


def two_sample_permutation_test(a: torch.Tensor, b: torch.Tensor, *, n_permutations: int = 10_000,
                                generator: torch.Generator | None = None) -> float:
    """Two-sided p-value that samples ``a`` ``(n,)`` and ``b`` ``(m,)`` have the same mean (random
    relabellings of the pooled values, ``p = (k + 1) / (n_permutations + 1)``)."""
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, torch.Tensor) or x.ndim != 1 or len(x) < 2:
            raise ValueError(f"{name}: expected a 1-D tensor of at least 2 values, got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(n_permutations, int) or n_permutations < 1:
        raise ValueError(f"n_permutations: expected an int >= 1, got {n_permutations!r}")
    pooled = torch.cat([a, b]).double()
    order = torch.rand(n_permutations, len(pooled), generator=generator).argsort(dim=1)
    shuffled = pooled[order]
    diffs = (shuffled[:, : len(a)].mean(1) - shuffled[:, len(a) :].mean(1)).abs()
    observed = abs(float(a.double().mean() - b.double().mean()))
    return (int((diffs >= observed - 1e-12).sum()) + 1) / (n_permutations + 1)


__all__ = ["association", "paired_permutation_test", "two_sample_permutation_test", "weat_effect_size", "weat_statistic", "weat_test"]
