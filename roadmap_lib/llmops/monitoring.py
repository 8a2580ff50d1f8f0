"""Drift monitoring for a deployed language model (chapter 17): is today's traffic still like the
traffic the model was checked on?

Two views of a window of incoming text, each compared with a *reference window*:

- **perplexity drift**: the model's per-token negative log-likelihoods (:func:`token_nll`); the two
  samples are compared with the two-sample Kolmogorov-Smirnov statistic (:func:`ks_statistic`,
  :func:`ks_pvalue`);
- **embedding drift**: one vector per text window (:func:`window_embeddings`, the mean of the
  model's last hidden states); the two sets are compared with the kernel maximum mean discrepancy
  (:func:`mmd2_unbiased`, Gretton et al. 2012) with an RBF kernel.

A statistic becomes an alarm through a threshold. The textbook p-value of the KS test assumes
independent draws, and the tokens of one text are not independent, so the threshold is instead
*calibrated*: computed on windows known to have no drift (:func:`calibrate_threshold`), at the
false alarm rate one can afford, and that rate is then measured on other no-drift windows
(:func:`alarm_rate`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def _check_ids(ids: torch.Tensor) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.ndim != 2 or ids.shape[1] < 2:
        got = f"{ids.dtype} of shape {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids: expected an int64 tensor (windows, length >= 2), got {got}")


@torch.no_grad()
def token_nll(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Per-token negative log-likelihood (nats) of each next token: ids ``(n, L)`` -> ``(n, L - 1)``.

    ``model(ids)`` must return logits ``(n, L, vocab)``; position t predicts token t + 1. The mean
    of the result is the log of the perplexity."""
    _check_ids(ids)
    was_training = model.training
    model.eval()
    logits = model(ids)
    model.train(was_training)
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                          reduction="none")
    return nll.reshape(ids.shape[0], ids.shape[1] - 1)


@torch.no_grad()
def score_windows(model: nn.Module, ids: torch.Tensor, module: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Everything the monitor needs from one forward pass over windows ``ids`` ``(n, L)``:

    - ``"nll"`` ``(n, L - 1)``: each next token's negative log-likelihood (as :func:`token_nll`);
    - ``"correct"`` ``(n, L - 1)`` bool: whether the model's top-1 guess was that token;
    - ``"embedding"`` ``(n, d)``: the mean over positions of ``module``'s output (default: the
      model's final norm ``model.ln_f``, the hidden state the LM head reads).
    """
    _check_ids(ids)
    module = module if module is not None else getattr(model, "ln_f", None)
    if module is None:
        raise ValueError("module: the model has no `ln_f`; pass the module whose output to pool")
    captured = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    was_training = model.training
    model.eval()
    try:
        logits = model(ids)
    finally:
        handle.remove()
        model.train(was_training)
    pred, target = logits[:, :-1], ids[:, 1:]
    nll = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), reduction="none")
    return {"nll": nll.reshape(target.shape), "correct": pred.argmax(-1) == target,
            "embedding": captured[-1].mean(dim=1)}


def window_embeddings(model: nn.Module, ids: torch.Tensor, module: nn.Module | None = None) -> torch.Tensor:
    """One vector per window, ids ``(n, L)`` -> ``(n, d)``: ``score_windows(...)["embedding"]``."""
    return score_windows(model, ids, module)["embedding"]


def _as_1d(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected a non-empty set of finite numbers, got {arr.size} values")
    return arr


def ks_statistic(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical
    distribution functions, D = max_x |F_a(x) − F_b(x)|. Inputs of any shape are flattened.

    The maximum is reached at one of the observed values, where each F is the fraction of its
    sample ``<= x`` (``searchsorted(..., side="right")``, which counts ties correctly)."""
    a, b = np.sort(_as_1d(a, "a")), np.sort(_as_1d(b, "b"))
    x = np.concatenate([a, b])
    fa = np.searchsorted(a, x, side="right") / a.size
    fb = np.searchsorted(b, x, side="right") / b.size
    return float(np.abs(fa - fb).max())


def ks_pvalue(d: float, n_a: int, n_b: int, terms: int = 100) -> float:
    """Asymptotic two-sided p-value of :func:`ks_statistic` ``d`` for samples of ``n_a`` and ``n_b``
    *independent* draws: Kolmogorov's distribution at λ = sqrt(n_a n_b / (n_a + n_b)) · d,

        P(D >= d) ≈ Q(λ) = 2 Σ_{k>=1} (−1)^{k−1} exp(−2 k² λ²).
    """
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"d: expected a KS statistic in [0, 1], got {d!r}")
    for name, n in (("n_a", n_a), ("n_b", n_b)):
        if not (isinstance(n, (int, np.integer)) and n >= 1):
            raise ValueError(f"{name}: expected an int >= 1, got {n!r}")
    lam = math.sqrt(n_a * n_b / (n_a + n_b)) * d
    if lam < 0.2:  # the series converges slowly here, and Q is 1 to 1e-20
        return 1.0
    q = 2.0 * sum((-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, terms + 1))
    return float(min(1.0, max(0.0, q)))


def median_bandwidth(x: torch.Tensor, y: torch.Tensor) -> float:
    """The median heuristic: the median distance between distinct points of ``x`` and ``y`` pooled,
    the usual bandwidth σ of the RBF kernel for :func:`mmd2_unbiased`."""
    z = torch.cat([_check_points(x, "x"), _check_points(y, "y")]).double()
    d = torch.cdist(z, z)
    off = d[~torch.eye(len(z), dtype=torch.bool)]
    return float(off.median())


def _check_points(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[0] < 2:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a tensor of points (n >= 2, dim), got {got}")
    return x


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Unbiased estimate of the squared maximum mean discrepancy between the distributions of the
    rows of ``x`` ``(n, d)`` and ``y`` ``(m, d)``, with the RBF kernel k(u, v) = exp(−|u − v|² / 2σ²):

        MMD² = mean_{i≠j} k(x_i, x_j) + mean_{i≠j} k(y_i, y_j) − 2 mean_{i,j} k(x_i, y_j).

    Its expectation is 0 when both come from one distribution (so it can be slightly negative)."""
    x, y = _check_points(x, "x").double(), _check_points(y, "y").double()
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y: expected points of dimension {x.shape[1]} like x, got {y.shape[1]}")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth: expected a positive number, got {bandwidth!r}")

    def k(u, v):
        return torch.exp(-torch.cdist(u, v).pow(2) / (2 * bandwidth**2))

    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    xx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(xx + yy - 2 * k(x, y).mean())


def calibrate_threshold(null_statistics, false_alarm_rate: float) -> float:
    """The alarm threshold: the smallest observed no-drift statistic with at most a
    ``false_alarm_rate`` fraction of the no-drift statistics above it (an alarm is ``stat >
    threshold``)."""
    s = np.sort(_as_1d(null_statistics, "null_statistics"))
    if not 0.0 < false_alarm_rate < 1.0:
        raise ValueError(f"false_alarm_rate: expected a rate in (0, 1), got {false_alarm_rate!r}")
    k = math.ceil((1.0 - false_alarm_rate) * s.size) - 1
    return float(s[max(k, 0)])


def alarm_rate(statistics, threshold: float) -> float:
    """Fraction of ``statistics`` above ``threshold``: the false alarm rate on no-drift windows,
    the detection rate on drifted ones."""
    return float((_as_1d(statistics, "statistics") > threshold).mean())


__all__ = [
    "alarm_rate",
    "calibrate_threshold",
    "ks_pvalue",
    "ks_statistic",
    "median_bandwidth",
    "mmd2_unbiased",
    "score_windows",
    "token_nll",
    "window_embeddings",
]
