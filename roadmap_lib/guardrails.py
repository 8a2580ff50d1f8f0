"""Guardrails: checks that sit around a model and flag inputs or outputs, and how to measure them.

Three pieces, all model-agnostic (they see strings, or call functions you pass):

- :class:`SecretGuard`, an *output filter*: flags a response that contains a protected string
  verbatim (after optional normalisation). Cheap, no false positives on text without the string,
  and blind to any transformed leak (reversed, spelled out, partly revealed).
- :class:`BagOfWordsGuard`, an *input or output classifier*: L2-regularised logistic regression on
  word counts, fitted with full-batch L-BFGS on the same objective as scikit-learn's
  ``LogisticRegression(C=...)`` (a test checks the coefficients against it).
- :func:`critique_and_revise`: the loop of constitutional-style guardrails {Bai et al. 2022}:
  generate, let a checker flag the response, ask again (a revision prompt or a fresh sample) up to
  ``max_rounds`` times, fall back to a fixed refusal if every try is flagged; it reports the number
  of generations spent, the extra compute.

:func:`detection_rates` turns flags and ground-truth labels into the two numbers every guardrail
is judged by: the catch rate (share of true violations flagged) and the false-positive rate (share
of harmless items flagged).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch

_WORD = re.compile(r"\S+")


def _check_texts(name: str, texts) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"{name}: expected a sequence of strings, got {type(texts).__name__}")
    return list(texts)


def detection_rates(flags: Sequence[bool], labels: Sequence[bool]) -> dict:
    """``{"catch_rate", "false_positive_rate", "positives", "negatives"}`` of ``flags`` against
    ``labels`` (True: a real violation). A rate with no item to compute it on is ``nan``."""
    flags, labels = [bool(f) for f in flags], [bool(y) for y in labels]
    if len(flags) != len(labels):
        raise ValueError(f"flags: expected as many as labels ({len(labels)}), got {len(flags)}")
    pos = sum(labels)
    neg = len(labels) - pos
    tp = sum(f and y for f, y in zip(flags, labels))
    fp = sum(f and not y for f, y in zip(flags, labels))
    return {"catch_rate": tp / pos if pos else float("nan"),
            "false_positive_rate": fp / neg if neg else float("nan"), "positives": pos, "negatives": neg}


class SecretGuard:
    """Flag texts that contain ``secret`` verbatim. ``normalize`` (default: lower case, whitespace
    removed) is applied to both the secret and the text before the substring test."""

    def __init__(self, secret: str, normalize: Callable[[str], str] | None = None) -> None:
        if not isinstance(secret, str) or not secret.strip():
            raise ValueError(f"secret: expected a non-empty string, got {secret!r}")
        self.normalize = normalize or (lambda s: "".join(s.lower().split()))
        self.secret = self.normalize(secret)

    def flag(self, texts: Sequence[str]) -> list[bool]:
        return [self.secret in self.normalize(t) for t in _check_texts("texts", texts)]


class BagOfWordsGuard:
    """Logistic regression on word counts (words: whitespace-separated, lower-cased unless
    ``lowercase=False``). ``fit`` minimises ``0.5 |w|^2 + C * sum(log-loss)`` (bias not penalised),
    scikit-learn's objective for ``LogisticRegression(C=C)``; words not seen in ``fit`` are ignored."""

    def __init__(self, C: float = 1.0, lowercase: bool = True, threshold: float = 0.5) -> None:
        if not C > 0:
            raise ValueError(f"C: expected a positive float, got {C!r}")
        if not 0 < threshold < 1:
            raise ValueError(f"threshold: expected a probability in (0, 1), got {threshold!r}")
        self.C, self.lowercase, self.threshold = float(C), lowercase, threshold
        self.words: dict[str, int] | None = None

    def _tokens(self, text: str) -> list[str]:
        return _WORD.findall(text.lower() if self.lowercase else text)

    def features(self, texts: Sequence[str]) -> torch.Tensor:
        """``(n, n_words)`` float64 word counts over the vocabulary seen in ``fit``."""
        if self.words is None:
            raise RuntimeError("BagOfWordsGuard: call fit(texts, labels) before features/scores/flag")
        x = torch.zeros(len(texts), len(self.words), dtype=torch.float64)
        for i, t in enumerate(_check_texts("texts", texts)):
            for w in self._tokens(t):
                if w in self.words:
                    x[i, self.words[w]] += 1
        return x

    def fit(self, texts: Sequence[str], labels: Sequence[bool]) -> BagOfWordsGuard:
        texts = _check_texts("texts", texts)
        y = torch.tensor([float(bool(v)) for v in labels], dtype=torch.float64)
        if len(y) != len(texts):
            raise ValueError(f"labels: expected {len(texts)} labels (one per text), got {len(y)}")
        if len(set(y.tolist())) != 2:
            raise ValueError("labels: expected both classes (True and False) among the labels")
        self.words = {w: i for i, w in enumerate(sorted({w for t in texts for w in self._tokens(t)}))}
        x = self.features(texts)
        w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros((), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=1, max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-14,
                                history_size=20, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = 0.5 * (w * w).sum() + self.C * torch.nn.functional.binary_cross_entropy_with_logits(
                x @ w + b, y, reduction="sum")
            loss.backward()
            return loss

        opt.step(closure)
        self.coef, self.intercept = w.detach(), float(b.detach())
        return self

    def scores(self, texts: Sequence[str]) -> torch.Tensor:
        """``(n,)`` probabilities of the positive class (a violation)."""
        return torch.sigmoid(self.features(texts) @ self.coef + self.intercept)

    def flag(self, texts: Sequence[str]) -> list[bool]:
        return (self.scores(texts) > self.threshold).tolist()


def critique_and_revise(generate: Callable[[list[str], int], list[str]], check: Callable[[list[str]], list[bool]],
                        prompts: Sequence[str], *, max_rounds: int = 3, fallback: str = "") -> dict:
    """Generate a response per prompt; while ``check`` flags a response, generate again (round
    ``r`` = 1, 2, ... is passed to ``generate`` so it can revise the prompt or change its seed),
    at most ``max_rounds`` extra generations; a response still flagged after them is replaced by
    ``fallback``.

    Returns ``{"first": first responses, "final": final responses, "flagged_first": flags of the
    first responses, "fell_back": per prompt, "generations": generations spent per prompt}``.
    """
    prompts = _check_texts("prompts", prompts)
    if not isinstance(max_rounds, int) or max_rounds < 0:
        raise ValueError(f"max_rounds: expected an int >= 0, got {max_rounds!r}")
    current = list(generate(prompts, 0))
    if len(current) != len(prompts):
        raise ValueError(f"generate: expected {len(prompts)} responses, got {len(current)}")
    first = list(current)
    flags = list(check(current))
    flagged_first = list(flags)
    generations = [1] * len(prompts)
    for r in range(1, max_rounds + 1):
        todo = [i for i, f in enumerate(flags) if f]
        if not todo:
            break
        redo = generate([prompts[i] for i in todo], r)
        new_flags = check(redo)
        for i, text, f in zip(todo, redo, new_flags):
            current[i], flags[i] = text, f
            generations[i] += 1
    fell_back = [bool(f) for f in flags]
    final = [fallback if f else t for t, f in zip(current, fell_back)]
    return {"first": first, "final": final, "flagged_first": [bool(f) for f in flagged_first],
            "fell_back": fell_back, "generations": generations}


__all__ = ["BagOfWordsGuard", "SecretGuard", "critique_and_revise", "detection_rates"]
