"""Chapter 17's A/B test: is the small draft GPT of chapter 15 (``gpt-char-draft``, 1 layer) worse
than the full character GPT (``gpt-char-jargon``, 4 layers) on our traffic?

An *example* is one 64-character request from the no-drift stream of :mod:`.drift`; each model gets
two per-example metrics: whether its top-1 guess of the request's last character is right (a
success, for the two-proportion z test) and its mean NLL over the request (a continuous score, for
the permutation test). *Paired*: both models answer the same requests. *Split*: each request goes to
one model (the other half of the traffic to the other).
"""

from __future__ import annotations

import numpy as np

from roadmap_lib.chapters.ch17_llmops.drift import Scores
from roadmap_lib.llmops import permutation_test, two_proportion_ztest
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.zoo import load_checkpoint

TRAFFIC = (8, 16, 32, 64, 128)  # requests per model in the power comparison
DRAWS = 40  # random draws of the traffic per size
N_RESAMPLES = 1999


def load_draft():
    """The shipped 1-layer draft GPT (chapter 15), with PyTorch's fused attention."""
    return load_checkpoint("gpt-char-draft", lambda c: GPT(GPTConfig(**c, attention_backend="sdpa")))[0]


def per_example(scores: Scores) -> dict[str, np.ndarray]:
    """``{"last correct": 0/1 per request, "mean nll": per request}``."""
    return {"last correct": scores.correct[:, -1].double().numpy(),
            "mean nll": scores.nll.mean(dim=1).double().numpy()}


def tests_on(a: dict, b: dict, idx_a: np.ndarray, idx_b: np.ndarray | None = None, *,
             seed: int = 0) -> dict[str, float]:
    """Model A on requests ``idx_a``, model B on ``idx_b`` (split traffic), or both on ``idx_a``
    when ``idx_b`` is None (paired). Last-character successes: the z test when split, the paired
    permutation test (sign flips of B's minus A's success) when paired. Mean NLL: the permutation
    test, split or paired."""
    paired = idx_b is None
    idx_b = idx_a if paired else idx_b
    xa, xb = a["last correct"][idx_a], b["last correct"][idx_b]
    if paired:
        success_p = permutation_test(xa, xb, paired=True, n_resamples=N_RESAMPLES, seed=seed).pvalue
    else:
        success_p = two_proportion_ztest(int(xa.sum()), len(xa), int(xb.sum()), len(xb)).pvalue
    perm = permutation_test(a["mean nll"][idx_a], b["mean nll"][idx_b], paired=paired,
                            n_resamples=N_RESAMPLES, seed=seed)
    return {"success rate A": float(xa.mean()), "success rate B": float(xb.mean()), "success p": success_p,
            "mean NLL A": float(a["mean nll"][idx_a].mean()), "mean NLL B": float(b["mean nll"][idx_b].mean()),
            "NLL p": perm.pvalue}


def power_by_traffic(a: dict, b: dict, *, alpha: float = 0.05, seed: int = 0,
                     traffic=TRAFFIC, draws: int = DRAWS) -> dict[str, list[float]]:
    """For each traffic size n: the fraction of ``draws`` random draws in which the permutation test
    on the mean NLL rejects at ``alpha``, paired (both models on the same n requests) and split
    (each model on its own n requests)."""
    rng = np.random.default_rng(seed)
    total = len(a["mean nll"])
    out = {"paired": [], "split": []}
    for n in traffic:
        if 2 * n > total:
            raise ValueError(f"traffic: {n} requests per model need {2 * n}, the pool has {total}")
        hits = {"paired": 0, "split": 0}
        for d in range(draws):
            perm = rng.permutation(total)
            same, other = perm[:n], perm[n:2 * n]
            hits["paired"] += permutation_test(a["mean nll"][same], b["mean nll"][same], paired=True,
                                               n_resamples=N_RESAMPLES, seed=d).pvalue < alpha
            hits["split"] += permutation_test(a["mean nll"][same], b["mean nll"][other],
                                              n_resamples=N_RESAMPLES, seed=d).pvalue < alpha
        for k, rates in out.items():
            rates.append(hits[k] / draws)
    return out


def simulated_power(p_a: float, p_b: float, n: int, *, alpha: float = 0.05, sims: int = 2000,
                    seed: int = 0) -> float:
    """The fraction of ``sims`` simulated split tests (``n`` Bernoulli draws per arm at rates
    ``p_a`` and ``p_b``) in which :func:`~roadmap_lib.llmops.two_proportion_ztest` rejects."""
    rng = np.random.default_rng(seed)
    xa, xb = rng.binomial(n, p_a, size=sims), rng.binomial(n, p_b, size=sims)
    return float(np.mean([two_proportion_ztest(int(u), n, int(v), n).pvalue < alpha for u, v in zip(xa, xb)]))
