"""A release gate and content-hash versions (chapter 17).

:func:`noninferiority_gate` decides whether a candidate model may replace the one in production: on
a held-out suite scored by both (the same items, so the comparison is paired), the paired bootstrap
interval of the mean difference ``candidate - production`` (for a lower-is-better metric such as
NLL) must lie below ``margin``. A candidate that is no worse within the margin passes; one whose
interval reaches past the margin does not, even if its mean looks fine: too few items to tell is a
"no". :func:`state_dict_sha256` names a model's weights by their content, so a registry entry can
be checked against the file it claims to describe.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from roadmap_lib.evaluation import bootstrap_ci


@dataclass(frozen=True)
class GateResult:
    mean_difference: float  # candidate - production, in the metric's units (lower is better)
    low: float  # the paired bootstrap interval of the difference
    high: float
    margin: float
    passed: bool

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (f"{verdict}: candidate - production = {self.mean_difference:+.4f}, "
                f"95% CI [{self.low:+.4f}, {self.high:+.4f}], margin {self.margin:+.4f}")


def noninferiority_gate(candidate, production, *, margin: float, n: int = 2000, seed: int = 0,
                        confidence: float = 0.95) -> GateResult:
    """Pass when the upper end of the paired bootstrap interval of ``mean(candidate - production)``
    is below ``margin`` (a per-item metric where lower is better, e.g. NLL; negate a
    higher-is-better metric first). ``candidate`` and ``production``: one value per held-out item,
    the same items in the same order."""
    cand = np.asarray(candidate, dtype=np.float64)
    prod = np.asarray(production, dtype=np.float64)
    if cand.ndim != 1 or cand.shape != prod.shape or len(cand) < 2:
        raise ValueError(f"candidate, production: expected two 1-D arrays of the same length >= 2 "
                         f"(one value per item), got shapes {cand.shape} and {prod.shape}")
    if not np.isfinite(cand).all() or not np.isfinite(prod).all():
        raise ValueError("candidate, production: expected finite values")
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"margin: expected a finite number >= 0, got {margin!r}")
    ci = bootstrap_ci(lambda c, p: float((c - p).mean()), torch.from_numpy(cand), torch.from_numpy(prod),
                      n=n, seed=seed, confidence=confidence)
    diff = float((cand - prod).mean())
    return GateResult(diff, float(ci.low), float(ci.high), float(margin), bool(ci.high < margin))


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a model's weights: every tensor's name, dtype, shape and bytes, in name order.
    Equal weights give equal hashes whatever file they came from; any changed value changes it."""
    if not state_dict:
        raise ValueError("state_dict: expected at least one tensor, got none")
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"state_dict[{name!r}]: expected a tensor, got {type(t).__name__}")
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


__all__ = ["GateResult", "noninferiority_gate", "state_dict_sha256"]
