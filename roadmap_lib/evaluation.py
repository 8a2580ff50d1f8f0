"""Evaluating models: how sure a score is, how calibrated a classifier is, how benchmarks score a
language model, and whether a benchmark leaked into the training data.

- :func:`bootstrap_ci`: the percentile bootstrap (Efron & Tibshirani, 1993) of any metric; pass
  two systems' outputs and the gold labels together and the resampling is *paired* (the same items
  drawn for both), which is how a difference between two systems is tested (Koehn, 2004).
- :func:`expected_calibration_error` with equal-width bins (Guo et al., 2017):

      ECE = Σ_b (|B_b| / n) · |acc(B_b) − conf(B_b)|,    B_b = {i : (b−1)/M < conf_i ≤ b/M}

  (the first bin also takes conf = 0). ``conf_i`` is the probability the model gave its own
  prediction, ``acc(B)`` the share of right predictions in the bin, ``conf(B)`` its mean confidence.
- :func:`score_choices` / :func:`multiple_choice_metrics`: multiple-choice benchmarks scored by
  log-likelihood the way lm-evaluation-harness does (Gao et al.). For each item the model scores
  every choice as a continuation of the context, ``ll_j = Σ_t log p(c_t | context, c_<t)``, and

      acc      = [argmax_j ll_j            == gold]
      acc_norm = [argmax_j ll_j / bytes_j  == gold],    bytes_j = len(choice_j.encode("utf-8"))

  ``argmax`` takes the first of tied choices (numpy's rule). The choice string is scored exactly as
  given, so put the separator in it (the harness's " answer", with its leading space). A sequence
  longer than the model's window is cut on the left, keeping the last ``max_length + 1`` tokens, as
  the harness does.
- :func:`ngram_index` / :func:`ngram_overlap`: contamination checks by n-gram overlap between
  benchmark items and training text (GPT-3 used 13-grams of words, Brown et al., 2020): the share of
  an item's word n-grams that occur in the training text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

# --------------------------------------------------------------------------------------- bootstrap


@dataclass
class BootstrapCI:
    estimate: float  # the metric on the data as given
    low: float  # lower end of the percentile interval
    high: float  # upper end
    samples: torch.Tensor  # (n,) the metric on each resample, float64

    def __iter__(self):  # so that `est, lo, hi = bootstrap_ci(...)` works
        return iter((self.estimate, self.low, self.high))


def _take(x, idx: torch.Tensor):
    if isinstance(x, torch.Tensor):
        return x[idx]
    return [x[i] for i in idx.tolist()]


def bootstrap_ci(metric_fn: Callable[..., float], *arrays, n: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> BootstrapCI:
    """Percentile bootstrap interval of ``metric_fn(*arrays)``.

    ``arrays``: tensors (first dimension = items) or lists, all of the same length; each resample
    draws that many item indices with replacement and applies the *same* indices to every array,
    so ``bootstrap_ci(lambda a, b, g: acc(a, g) - acc(b, g), pred_a, pred_b, gold)`` is the paired
    bootstrap of a difference. The interval is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of the resampled metric (linear interpolation, numpy's
    default). Seeded: the same call gives the same interval.
    """
    if not arrays:
        raise ValueError("arrays: expected at least one array of items, got none")
    sizes = [len(a) for a in arrays]
    if len(set(sizes)) != 1 or sizes[0] == 0:
        raise ValueError(f"arrays: expected non-empty arrays of one length, got lengths {sizes}")
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n: expected an int >= 2 resamples, got {n!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    size = sizes[0]
    g = torch.Generator().manual_seed(seed)
    samples = torch.empty(n, dtype=torch.float64)
    for k in range(n):
        idx = torch.randint(0, size, (size,), generator=g)
        samples[k] = float(metric_fn(*(_take(a, idx) for a in arrays)))
    q = torch.tensor([(1 - confidence) / 2, (1 + confidence) / 2], dtype=torch.float64)
    low, high = torch.quantile(samples, q).tolist()
    return BootstrapCI(float(metric_fn(*arrays)), low, high, samples)


# --------------------------------------------------------------------------------------- calibration


def _check_calibration(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int) -> None:
    if not isinstance(confidence, torch.Tensor) or confidence.ndim != 1 or not confidence.is_floating_point():
        raise TypeError(f"confidence: expected a 1-D float tensor, got "
                        f"{getattr(confidence, 'shape', type(confidence).__name__)}")
    if not isinstance(correct, torch.Tensor) or correct.shape != confidence.shape:
        raise ValueError(f"correct: expected a tensor of shape {tuple(confidence.shape)}, got "
                         f"{getattr(correct, 'shape', type(correct).__name__)}")
    if len(confidence) == 0:
        raise ValueError("confidence: expected at least one prediction, got none")
    if bool(((confidence < 0) | (confidence > 1)).any()):
        raise ValueError("confidence: expected probabilities in [0, 1], got values outside")
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins: expected an int >= 1, got {n_bins!r}")


def reliability_bins(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int = 10
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean confidence, accuracy, count)`` per equal-width bin, each ``(n_bins,)``; empty bins
    have count 0 and NaN means. A confidence on a bin edge goes to the lower bin."""
    _check_calibration(confidence, correct, n_bins)
    conf, ok = confidence.double(), correct.double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)[1:-1]
    which = torch.bucketize(conf, edges, right=False)
    count = torch.bincount(which, minlength=n_bins).double()
    mean_conf = torch.bincount(which, conf, minlength=n_bins) / count
    acc = torch.bincount(which, ok, minlength=n_bins) / count
    return mean_conf, acc, count


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int = 10) -> float:
    """ECE with ``n_bins`` equal-width bins (module docstring): ``confidence`` ``(n,)`` in [0, 1],
    the probability of the predicted label; ``correct`` ``(n,)`` 1/0 or bool. 0 = calibrated."""
    mean_conf, acc, count = reliability_bins(confidence, correct, n_bins)
    full = count > 0
    return float((count[full] / count.sum() * (acc[full] - mean_conf[full]).abs()).sum())


# --------------------------------------------------------------------------------------- multiple choice


@dataclass
class MCItem:
    context: str
    choices: list[str]  # continuations, scored exactly as written (include the leading space)
    gold: int  # index of the right choice

    def __post_init__(self):
        if not isinstance(self.choices, list) or len(self.choices) < 2:
            raise ValueError(f"choices: expected a list of at least 2 strings, got {self.choices!r}")
        if not all(isinstance(c, str) and c for c in self.choices):
            raise ValueError(f"choices: expected non-empty strings, got {self.choices!r}")
        if not isinstance(self.gold, int) or not 0 <= self.gold < len(self.choices):
            raise ValueError(f"gold: expected an index in [0, {len(self.choices)}), got {self.gold!r}")


@torch.no_grad()
def continuation_logliks(model, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], *, max_length: int,
                         batch_size: int = 64) -> torch.Tensor:
    """``Σ log p(continuation | context)`` (nats, float64) for each ``(context ids, continuation
    ids)`` pair -> ``(len(pairs),)``. ``model(ids (batch, seq)) -> logits (batch, seq, vocab)``;
    each sequence keeps its last ``max_length + 1`` tokens (left truncation); the continuation must
    be non-empty and at most ``max_length`` tokens, the context at least one token."""
    seqs, n_cont = [], []
    for k, (ctx, cont) in enumerate(pairs):
        ctx, cont = list(ctx), list(cont)
        if not ctx or not cont or len(cont) > max_length:
            raise ValueError(f"pairs[{k}]: expected a non-empty context and a continuation of 1..{max_length} "
                             f"tokens, got {len(ctx)} and {len(cont)}")
        seqs.append((ctx + cont)[-(max_length + 1):])
        n_cont.append(len(cont))
    out = torch.empty(len(seqs), dtype=torch.float64)
    for start in range(0, len(seqs), batch_size):
        chunk = seqs[start:start + batch_size]
        width = max(map(len, chunk))
        ids = torch.tensor([s + [0] * (width - len(s)) for s in chunk])  # right padding: causal, unseen
        logp = model(ids[:, :-1]).double().log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
        for r, s in enumerate(chunk):
            c = n_cont[start + r]
            out[start + r] = logp[r, len(s) - 1 - c:len(s) - 1].sum()
    return out


def score_choices(model, encode: Callable[[str], Sequence[int]], items: Sequence[MCItem], *, max_length: int,
                  batch_size: int = 64) -> list[torch.Tensor]:
    """Summed log-likelihood of every choice of every item -> a list of ``(n_choices,)`` tensors.
    ``encode(text) -> token ids``; context and choice are encoded separately and joined."""
    pairs = [(encode(it.context), encode(c)) for it in items for c in it.choices]
    flat = continuation_logliks(model, pairs, max_length=max_length, batch_size=batch_size)
    return list(flat.split([len(it.choices) for it in items]))


def multiple_choice_metrics(logliks: Sequence[torch.Tensor], items: Sequence[MCItem]) -> dict[str, torch.Tensor]:
    """Per-item correctness (float64 tensors of 0/1, ``(n_items,)``) under ``acc`` and ``acc_norm``
    (module docstring); take ``.mean()`` for the benchmark score and feed them to
    :func:`bootstrap_ci` for its interval."""
    if len(logliks) != len(items):
        raise ValueError(f"logliks: expected one tensor per item ({len(items)}), got {len(logliks)}")
    acc, acc_norm = [], []
    for k, (ll, it) in enumerate(zip(logliks, items)):
        if ll.shape != (len(it.choices),):
            raise ValueError(f"logliks[{k}]: expected shape ({len(it.choices)},), got {tuple(ll.shape)}")
        nbytes = torch.tensor([len(c.encode("utf-8")) for c in it.choices], dtype=torch.float64)
        acc.append(float(int(ll.argmax()) == it.gold))
        acc_norm.append(float(int((ll / nbytes).argmax()) == it.gold))
    return {"acc": torch.tensor(acc, dtype=torch.float64), "acc_norm": torch.tensor(acc_norm, dtype=torch.float64)}


# --------------------------------------------------------------------------------------- contamination

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-cased runs of [a-z0-9]: the units of the contamination check (punctuation, case and
    line breaks do not hide a copied passage)."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def _grams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def ngram_index(texts: str | Sequence[str], n: int = 8) -> set[tuple[str, ...]]:
    """The set of word ``n``-grams of the training text(s)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    texts = [texts] if isinstance(texts, str) else texts
    index: set[tuple[str, ...]] = set()
    for t in texts:
        index |= _grams(words(t), n)
    return index


def ngram_overlap(text: str, index: set[tuple[str, ...]], n: int = 8) -> float:
    """Share of ``text``'s word ``n``-grams found in ``index`` (0 when the text has fewer than
    ``n`` words). An item whose share passes a threshold (any shared 13-gram, in GPT-3's report) is
    flagged as contaminated."""
    grams = _grams(words(text), n)
    if index and len(next(iter(index))) != n:
        raise ValueError(f"n: expected the index's n-gram length {len(next(iter(index)))}, got {n}")
    return sum(g in index for g in grams) / len(grams) if grams else 0.0


__all__ = ["BootstrapCI", "MCItem", "bootstrap_ci", "continuation_logliks", "expected_calibration_error",
           "multiple_choice_metrics", "ngram_index", "ngram_overlap", "reliability_bins", "score_choices",
           "words"]
