"""BLEU (Papineni et al., 2002) as sacrebleu computes it, and perplexity.

    BLEU = BP * exp( (1/N) * sum_n log p_n ),   N = 4
    p_n  = (clipped n-gram matches) / (n-grams in the hypothesis), summed over the whole corpus
    BP   = 1 if c > r else exp(1 - r / c)       c: hypothesis length, r: closest reference length

"Clipped": a hypothesis n-gram counts at most as many times as it occurs in the reference that has
the most of it. Scores are on sacrebleu's 0-100 scale. Text is tokenised like sacrebleu's default
``13a`` tokenizer (mteval-v13a, used by WMT); for plain ASCII text the two agree token for token.

Smoothing (Chen & Cherry, 2014) matters when some n-gram order has no match at all, which is the
rule for single short sentences:
    "exp"   (sacrebleu's default, NIST): the k-th order with no match gets precision 1 / (2^k * total)
    "floor": an order with no match gets precision smooth_value / total (default 0.1)
    "add-k": add smooth_value (default 1) to matches and totals for orders n >= 2
    "none" : an order with no match makes the score 0
``effective_order`` (sacrebleu's default for sentence BLEU) averages only over orders that the
hypothesis is long enough to have.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

MAX_ORDER = 4
SMOOTH_DEFAULTS = {"none": None, "floor": 0.1, "add-k": 1.0, "exp": None}
_LOG_ZERO = -9999999999.0  # sacrebleu's floor for log(0)

# mteval-v13a: split off punctuation and symbols; split '.' and ',' unless between digits;
# split '-' after a digit.
_13A_RULES = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def tokenize_13a(line: str) -> list[str]:
    """Tokens of ``line`` as sacrebleu's default '13a' tokenizer splits it."""
    if not isinstance(line, str):
        raise TypeError(f"line: expected str, got {type(line).__name__}")
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = (line.replace("&quot;", '"').replace("&amp;", "&")
                .replace("&lt;", "<").replace("&gt;", ">"))
    line = f" {line} "
    for pattern, repl in _13A_RULES:
        line = pattern.sub(repl, line)
    return line.split()


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    """Counts of every n-gram (as a tuple) in ``tokens``."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


@dataclass
class BLEUScore:
    score: float  # 0..100
    precisions: list[float]  # per order, in percent, after smoothing
    brevity_penalty: float
    matches: list[int]  # clipped matches per order
    totals: list[int]  # hypothesis n-grams per order
    hyp_len: int
    ref_len: int


def bleu_statistics(hypothesis: str, references: Sequence[str]) -> list[int]:
    """[hyp_len, ref_len, matches_1..4, totals_1..4] for one segment (the sums are corpus BLEU's input)."""
    hyp = tokenize_13a(hypothesis)
    refs = [tokenize_13a(r) for r in references]
    # closest reference length; ties go to the shorter one
    ref_len = min((len(r) for r in refs), key=lambda n: (abs(n - len(hyp)), n))
    matches, totals = [], []
    for n in range(1, MAX_ORDER + 1):
        max_ref = Counter()
        for r in refs:
            max_ref |= ngrams(r, n)  # element-wise max
        hyp_counts = ngrams(hyp, n)
        matches.append(sum(min(c, max_ref[g]) for g, c in hyp_counts.items()))
        totals.append(max(len(hyp) - n + 1, 0))
    return [len(hyp), ref_len, *matches, *totals]


def bleu_from_statistics(stats: Sequence[int], smooth_method: str = "exp", smooth_value: float | None = None,
                         effective_order: bool = False) -> BLEUScore:
    """The BLEU score from summed statistics ``[hyp_len, ref_len, matches x4, totals x4]``."""
    if smooth_method not in SMOOTH_DEFAULTS:
        raise ValueError(f"smooth_method: expected one of {list(SMOOTH_DEFAULTS)}, got {smooth_method!r}")
    if len(stats) != 2 + 2 * MAX_ORDER:
        raise ValueError(f"stats: expected {2 + 2 * MAX_ORDER} numbers, got {len(stats)}")
    if smooth_value is None:
        smooth_value = SMOOTH_DEFAULTS[smooth_method]
    hyp_len, ref_len = stats[0], stats[1]
    matches = [float(m) for m in stats[2:2 + MAX_ORDER]]
    totals = [float(t) for t in stats[2 + MAX_ORDER:]]

    bp = 1.0
    if hyp_len < ref_len:
        bp = math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0
    precisions = [0.0] * MAX_ORDER
    result = {"matches": [int(m) for m in matches], "totals": [int(t) for t in totals],
              "hyp_len": int(hyp_len), "ref_len": int(ref_len), "brevity_penalty": bp}
    if not any(matches):
        return BLEUScore(score=0.0, precisions=precisions, **result)

    halvings, orders = 1.0, MAX_ORDER
    for n in range(1, MAX_ORDER + 1):
        if smooth_method == "add-k" and n > 1:
            matches[n - 1] += smooth_value
            totals[n - 1] += smooth_value
        if totals[n - 1] == 0:
            break  # no n-grams this long: later orders keep precision 0
        if effective_order:
            orders = n
        if matches[n - 1] == 0:
            if smooth_method == "exp":
                halvings *= 2
                precisions[n - 1] = 100.0 / (halvings * totals[n - 1])
            elif smooth_method == "floor":
                precisions[n - 1] = 100.0 * smooth_value / totals[n - 1]
        else:
            precisions[n - 1] = 100.0 * matches[n - 1] / totals[n - 1]
    log_mean = sum(math.log(p) if p > 0 else _LOG_ZERO for p in precisions[:orders]) / orders
    return BLEUScore(score=bp * math.exp(log_mean), precisions=precisions, **result)


def _check_strings(name: str, xs) -> None:
    if isinstance(xs, str) or not isinstance(xs, Sequence):
        raise TypeError(f"{name}: expected a list of str, got {type(xs).__name__}")
    for i, x in enumerate(xs):
        if not isinstance(x, str):
            raise TypeError(f"{name}[{i}]: expected str, got {type(x).__name__}")


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]], *,
                smooth_method: str = "exp", smooth_value: float | None = None,
                effective_order: bool = False) -> BLEUScore:
    """Corpus BLEU, defaults as ``sacrebleu.corpus_bleu``.

    ``references``: one reference per hypothesis (a list of str), or, as in sacrebleu, a list of
    reference *streams*, each a list with one reference per hypothesis.
    """
    _check_strings("hypotheses", hypotheses)
    if isinstance(references, str) or not isinstance(references, Sequence) or len(references) == 0:
        raise TypeError("references: expected a non-empty list of str or a list of lists of str")
    streams = [references] if isinstance(references[0], str) else list(references)
    for k, stream in enumerate(streams):
        _check_strings("references" if stream is references else f"references[{k}]", stream)
        if len(stream) != len(hypotheses):
            raise ValueError(f"references: expected {len(hypotheses)} references (one per hypothesis), "
                             f"got {len(stream)}")
    total = [0] * (2 + 2 * MAX_ORDER)
    for i, hyp in enumerate(hypotheses):
        for j, s in enumerate(bleu_statistics(hyp, [stream[i] for stream in streams])):
            total[j] += s
    return bleu_from_statistics(total, smooth_method, smooth_value, effective_order)


def sentence_bleu(hypothesis: str, references: str | Sequence[str], *, smooth_method: str = "exp",
                  smooth_value: float | None = None, effective_order: bool = True) -> BLEUScore:
    """BLEU of one sentence against one or more references, defaults as ``sacrebleu.sentence_bleu``."""
    if not isinstance(hypothesis, str):
        raise TypeError(f"hypothesis: expected str, got {type(hypothesis).__name__}")
    refs = [references] if isinstance(references, str) else references
    _check_strings("references", refs)
    if len(refs) == 0:
        raise ValueError("references: expected at least one reference, got none")
    return bleu_from_statistics(bleu_statistics(hypothesis, refs), smooth_method, smooth_value, effective_order)


def perplexity(mean_nll: float | torch.Tensor) -> float:
    """exp of the mean negative log-likelihood per token (in nats)."""
    value = float(mean_nll)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"mean_nll: expected a finite number >= 0, got {value}")
    return math.exp(value)


def sequence_perplexity(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> float:
    """Perplexity of ``targets`` (batch, T) under ``logits`` (batch, T, vocab), ignoring ``ignore_index``."""
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(f"logits, targets: expected shapes (batch, T, vocab) and (batch, T), "
                         f"got {tuple(logits.shape)} and {tuple(targets.shape)}")
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(),
                                            ignore_index=ignore_index)
    return perplexity(nll)


def accuracy(pred: torch.Tensor, gold: torch.Tensor, *, ignore_index: int = -100) -> float:
    """Share of positions where ``pred == gold``, over the positions where ``gold != ignore_index``."""
    if pred.shape != gold.shape:
        raise ValueError(f"pred: expected the shape of gold {tuple(gold.shape)}, got {tuple(pred.shape)}")
    keep = gold != ignore_index
    if not keep.any():
        raise ValueError("gold: every position is ignore_index, there is nothing to score")
    return (pred[keep] == gold[keep]).float().mean().item()


def token_f1(pred: torch.Tensor, gold: torch.Tensor, *, positive: int = 1, ignore_index: int = -100) -> float:
    """F1 of the ``positive`` class over positions where ``gold != ignore_index``; 0.0 when no
    prediction is right (precision or recall undefined or zero), as scikit-learn's ``zero_division=0``."""
    if pred.shape != gold.shape:
        raise ValueError(f"pred: expected the shape of gold {tuple(gold.shape)}, got {tuple(pred.shape)}")
    keep = gold != ignore_index
    p, g = pred[keep] == positive, gold[keep] == positive
    tp = (p & g).sum().item()
    if tp == 0:
        return 0.0
    precision, recall = tp / p.sum().item(), tp / g.sum().item()
    return 2 * precision * recall / (precision + recall)


__all__ = ["BLEUScore", "accuracy", "token_f1", "bleu_from_statistics", "bleu_statistics", "corpus_bleu", "ngrams", "perplexity",
           "sentence_bleu", "sequence_perplexity", "tokenize_13a"]
