"""Text and classification metrics, each equal to the implementation people quote.

- BLEU (Papineni et al., 2002) as ``sacrebleu`` computes it (below), and perplexity;
- chrF / chrF++ (Popović, 2015; 2017) as ``sacrebleu.CHRF``: :func:`corpus_chrf`, :func:`sentence_chrf`;
- ROUGE-1/2/L/Lsum (Lin, 2004) as Google's ``rouge-score``: :func:`rouge`;
- SQuAD exact match and F1 (Rajpurkar et al., 2016) with the official normalisation:
  :func:`squad_exact_match`, :func:`squad_f1`, :func:`normalize_answer`;
- accuracy / precision / recall / F1 (micro, macro, weighted) as scikit-learn:
  :func:`precision_recall_f1`, :func:`classification_accuracy`.

BLEU:

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
import string
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
    streams = _reference_streams(references, len(hypotheses))
    total = [0] * (2 + 2 * MAX_ORDER)
    for i, hyp in enumerate(hypotheses):
        for j, s in enumerate(bleu_statistics(hyp, [stream[i] for stream in streams])):
            total[j] += s
    return bleu_from_statistics(total, smooth_method, smooth_value, effective_order)


def sentence_bleu(hypothesis: str, references: str | Sequence[str], *, smooth_method: str = "exp",
                  smooth_value: float | None = None, effective_order: bool = True) -> BLEUScore:
    """BLEU of one sentence against one or more references, defaults as ``sacrebleu.sentence_bleu``."""
    refs = _sentence_references(hypothesis, references)
    return bleu_from_statistics(bleu_statistics(hypothesis, refs), smooth_method, smooth_value, effective_order)


def _sentence_references(hypothesis, references) -> list[str]:
    if not isinstance(hypothesis, str):
        raise TypeError(f"hypothesis: expected str, got {type(hypothesis).__name__}")
    refs = [references] if isinstance(references, str) else references
    _check_strings("references", refs)
    if len(refs) == 0:
        raise ValueError("references: expected at least one reference, got none")
    return list(refs)


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


# --------------------------------------------------------------------------------------- chrF

CHRF_PUNCTUATION = set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~')


def _chrf_words(text: str) -> list[str]:
    """chrF++'s words: whitespace split, one leading or trailing punctuation mark split off."""
    words = []
    for w in text.split():
        if len(w) > 1 and w[-1] in CHRF_PUNCTUATION:
            words += [w[:-1], w[-1]]
        elif len(w) > 1 and w[0] in CHRF_PUNCTUATION:
            words += [w[0], w[1:]]
        else:
            words.append(w)
    return words


def _chrf_ngrams(text: str, char_order: int, word_order: int, whitespace: bool) -> list[Counter]:
    chars = text if whitespace else "".join(text.split())
    out = [Counter(chars[i:i + n] for i in range(len(chars) - n + 1)) for n in range(1, char_order + 1)]
    words = _chrf_words(text) if word_order else []
    out += [ngrams(words, n) for n in range(1, word_order + 1)]
    return out


def chrf_from_statistics(stats: Sequence[int], beta: float = 2.0) -> float:
    """chrF (0-100) from ``[hyp, ref, match]`` counts per order, flattened; as ``sacrebleu.CHRF``:
    precision and recall are averaged over the orders where both sides have n-grams, then
    combined as F_beta = (1 + β²) P R / (β² P + R). β = 2 weighs recall twice as much as precision."""
    if len(stats) % 3 or not stats:
        raise ValueError(f"stats: expected 3 numbers per order, got {len(stats)}")
    avg_p = avg_r = 0.0
    orders = 0
    for i in range(0, len(stats), 3):
        n_hyp, n_ref, n_match = stats[i:i + 3]
        if n_hyp > 0 and n_ref > 0:
            avg_p += n_match / n_hyp
            avg_r += n_match / n_ref
            orders += 1
    if orders == 0:
        return 0.0
    avg_p, avg_r = avg_p / orders, avg_r / orders
    f = beta ** 2
    return 100 * (1 + f) * avg_p * avg_r / (f * avg_p + avg_r) if avg_p + avg_r else 0.0


def chrf_statistics(hypothesis: str, references: Sequence[str], *, char_order: int = 6, word_order: int = 0,
                    beta: float = 2.0, lowercase: bool = False, whitespace: bool = False) -> list[int]:
    """``[hyp, ref, match] x orders`` of one segment against the reference that gives the best chrF."""
    if lowercase:
        hypothesis, references = hypothesis.lower(), [r.lower() for r in references]
    hyp = _chrf_ngrams(hypothesis, char_order, word_order, whitespace)
    best, best_f = [], -1.0
    for ref in references:
        stats = []
        for h, r in zip(hyp, _chrf_ngrams(ref, char_order, word_order, whitespace)):
            match = sum(min(c, r[g]) for g, c in h.items() if g in r)
            stats += [sum(h.values()) if r else 0, sum(r.values()), match]
        f = chrf_from_statistics(stats, beta)
        if f > best_f:
            best, best_f = stats, f
    return best


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]], *,
                char_order: int = 6, word_order: int = 0, beta: float = 2.0, lowercase: bool = False,
                whitespace: bool = False) -> float:
    """Corpus chrF (0-100), defaults as ``sacrebleu.corpus_chrf`` (character 1..6-grams, spaces
    removed, β = 2); ``word_order=2`` gives chrF++. Statistics are summed over segments first.
    ``references``: one per hypothesis, or a list of reference streams as for :func:`corpus_bleu`."""
    _check_strings("hypotheses", hypotheses)
    streams = _reference_streams(references, len(hypotheses))
    total = [0] * (3 * (char_order + word_order))
    for i, hyp in enumerate(hypotheses):
        stats = chrf_statistics(hyp, [s[i] for s in streams], char_order=char_order, word_order=word_order,
                                beta=beta, lowercase=lowercase, whitespace=whitespace)
        total = [a + b for a, b in zip(total, stats)]
    return chrf_from_statistics(total, beta)


def sentence_chrf(hypothesis: str, references: str | Sequence[str], **kwargs) -> float:
    """chrF of one sentence (0-100), as ``sacrebleu.sentence_chrf``; keywords as :func:`corpus_chrf`."""
    refs = _sentence_references(hypothesis, references)
    return corpus_chrf([hypothesis], [[r] for r in refs], **kwargs)


def _reference_streams(references, n: int) -> list:
    if isinstance(references, str) or not isinstance(references, Sequence) or len(references) == 0:
        raise TypeError("references: expected a non-empty list of str or a list of lists of str")
    streams = [references] if isinstance(references[0], str) else list(references)
    for k, stream in enumerate(streams):
        _check_strings("references" if stream is references else f"references[{k}]", stream)
        if len(stream) != n:
            raise ValueError(f"references: expected {n} references (one per hypothesis), got {len(stream)}")
    return streams


# --------------------------------------------------------------------------------------- ROUGE

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_STEMMER = None


def rouge_tokenize(text: str, stem: bool = False) -> list[str]:
    """Tokens as ``rouge-score`` makes them: lower-case, every run of characters outside [a-z0-9]
    is a separator (so "don't" -> "don", "t", and accented letters vanish), and with ``stem`` the
    Porter stemmer (nltk's) on tokens longer than 3 characters."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    tokens = _NON_ALNUM.sub(" ", text.lower()).split()
    if stem:
        global _STEMMER
        if _STEMMER is None:
            from nltk.stem import porter
            _STEMMER = porter.PorterStemmer()
        tokens = [_STEMMER.stem(t) if len(t) > 3 else t for t in tokens]
    return [t for t in tokens if re.fullmatch(r"[a-z0-9]+", t)]


@dataclass
class RougeScore:
    precision: float
    recall: float
    fmeasure: float


def _prf(hits: int, n_pred: int, n_target: int) -> RougeScore:
    p, r = hits / max(n_pred, 1), hits / max(n_target, 1)
    return RougeScore(p, r, 2 * p * r / (p + r) if p + r > 0 else 0.0)


def _lcs_table(a: Sequence[str], b: Sequence[str]) -> list[list[int]]:
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            t[i][j] = t[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(t[i - 1][j], t[i][j - 1])
    return t


def _lcs_indices(ref: Sequence[str], cand: Sequence[str]) -> list[int]:
    """Indices into ``ref`` of one longest common subsequence (rouge-score's backtrack)."""
    t, i, j, out = _lcs_table(ref, cand), len(ref), len(cand), []
    while i > 0 and j > 0:
        if ref[i - 1] == cand[j - 1]:
            out.append(i - 1)
            i, j = i - 1, j - 1
        elif t[i][j - 1] > t[i - 1][j]:
            j -= 1
        else:
            i -= 1
    return out[::-1]


def _rouge_lsum(target: str, prediction: str, stem: bool) -> RougeScore:
    """Summary-level LCS: sentences are the lines of the text; each reference sentence takes the
    union of its LCS with every candidate sentence, and a token counts at most as often as it
    occurs on both sides."""
    refs = [rouge_tokenize(s, stem) for s in target.split("\n") if s]
    cands = [rouge_tokenize(s, stem) for s in prediction.split("\n") if s]
    m, n = sum(map(len, refs)), sum(map(len, cands))
    if not refs or not cands or not m or not n:
        return RougeScore(0.0, 0.0, 0.0)
    left_r, left_c = Counter(t for s in refs for t in s), Counter(t for s in cands for t in s)
    hits = 0
    for r in refs:
        union = sorted(set().union(*(_lcs_indices(r, c) for c in cands)))
        for tok in (r[i] for i in union):
            if left_c[tok] > 0 and left_r[tok] > 0:
                hits += 1
                left_c[tok] -= 1
                left_r[tok] -= 1
    return _prf(hits, n, m)


def rouge(target: str, prediction: str, types: Sequence[str] = ("rouge1", "rouge2", "rougeL", "rougeLsum"),
          *, stem: bool = False) -> dict[str, RougeScore]:
    """ROUGE scores of ``prediction`` against one ``target``, equal to
    ``rouge_score.rouge_scorer.RougeScorer(types, use_stemmer=stem).score(target, prediction)``.

    rougeN: clipped n-gram overlap; precision over the prediction's n-grams, recall over the
    target's. rougeL: the longest common subsequence of the whole token lists. rougeLsum: the
    summary-level LCS with sentences split on newlines (put one sentence per line; rouge-score's
    ``split_summaries=True`` would split with nltk's sentence splitter instead).
    Note the argument order: target (the reference) first, as in rouge-score.
    """
    if not isinstance(target, str) or not isinstance(prediction, str):
        raise TypeError(f"target, prediction: expected str, got {type(target).__name__} and "
                        f"{type(prediction).__name__}")
    tgt, pred = rouge_tokenize(target, stem), rouge_tokenize(prediction, stem)
    out = {}
    for kind in types:
        if kind == "rougeL":
            lcs = _lcs_table(tgt, pred)[-1][-1] if tgt and pred else 0
            out[kind] = _prf(lcs, len(pred), len(tgt)) if tgt and pred else RougeScore(0.0, 0.0, 0.0)
        elif kind == "rougeLsum":
            out[kind] = _rouge_lsum(target, prediction, stem)
        elif re.fullmatch(r"rouge[1-9]", kind):
            n = int(kind[5:])
            t, p = ngrams(tgt, n), ngrams(pred, n)
            out[kind] = _prf(sum(min(c, p[g]) for g, c in t.items()), sum(p.values()), sum(t.values()))
        else:
            raise ValueError(f"types: expected 'rouge1'..'rouge9', 'rougeL' or 'rougeLsum', got {kind!r}")
    return out


# --------------------------------------------------------------------------------------- SQuAD

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """The official SQuAD normalisation: lower-case, drop ASCII punctuation, drop the articles
    a/an/the (as whole words), collapse whitespace. In that order, as the official script does."""
    if not isinstance(s, str):
        raise TypeError(f"s: expected str, got {type(s).__name__}")
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def _one_f1(prediction: str, gold: str) -> float:
    p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not p or not g:  # SQuAD 2.0 rule: an empty answer scores 1 only against an empty answer
        return float(p == g)
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def _golds(gold_answers) -> list[str]:
    golds = [gold_answers] if isinstance(gold_answers, str) else list(gold_answers)
    _check_strings("gold_answers", golds)
    if not golds:
        raise ValueError("gold_answers: expected at least one gold answer, got none")
    return golds


def squad_exact_match(prediction: str, gold_answers: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in _golds(gold_answers)))


def squad_f1(prediction: str, gold_answers: str | Sequence[str]) -> float:
    """Token F1 of the normalised bags of words, maximised over the gold answers (SQuAD's F1).
    Not to be confused with :func:`token_f1` (positive-class F1 over tagged positions)."""
    return max(_one_f1(prediction, g) for g in _golds(gold_answers))


# --------------------------------------------------------------------------------------- classification

def _labels(name: str, xs) -> list:
    if isinstance(xs, torch.Tensor):
        if xs.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D tensor of labels, got shape {tuple(xs.shape)}")
        return xs.tolist()
    if isinstance(xs, str) or not isinstance(xs, Sequence):
        raise TypeError(f"{name}: expected a 1-D tensor or a list of labels, got {type(xs).__name__}")
    return list(xs)


def classification_accuracy(pred, gold) -> float:
    """Share of ``pred[i] == gold[i]`` (labels of any hashable kind; tensors or lists)."""
    p, g = _labels("pred", pred), _labels("gold", gold)
    if len(p) != len(g) or not g:
        raise ValueError(f"pred: expected {len(g)} labels (as many as gold, at least 1), got {len(p)}")
    return sum(a == b for a, b in zip(p, g)) / len(g)


def precision_recall_f1(pred, gold, *, average: str | None = "macro", labels: Sequence | None = None
                        ) -> tuple[float, float, float] | dict:
    """Precision, recall and F1 as ``sklearn.metrics.precision_recall_fscore_support(gold, pred,
    average=..., zero_division=0)``.

    ``average``: "micro" (pool every decision: for single-label data P = R = F1 = accuracy), "macro"
    (the plain mean over labels: rare labels weigh as much as frequent ones), "weighted" (mean
    weighted by each label's count in ``gold``; its F1 need not lie between P and R), or None (a
    dict ``{label: (P, R, F1)}``). ``labels``: the labels to score (default: those in pred or gold,
    sorted). A ratio with a zero denominator counts as 0.
    """
    if average not in ("micro", "macro", "weighted", None):
        raise ValueError(f"average: expected 'micro', 'macro', 'weighted' or None, got {average!r}")
    p, g = _labels("pred", pred), _labels("gold", gold)
    if len(p) != len(g) or not g:
        raise ValueError(f"pred: expected {len(g)} labels (as many as gold, at least 1), got {len(p)}")
    labels = sorted(set(p) | set(g)) if labels is None else list(labels)
    tp = Counter(a for a, b in zip(p, g) if a == b)
    n_pred, n_gold = Counter(p), Counter(g)

    def ratio(a, b):
        return a / b if b else 0.0

    def f1(pr, rc):
        return ratio(2 * pr * rc, pr + rc)

    if average == "micro":
        t = sum(tp[c] for c in labels)
        pr, rc = ratio(t, sum(n_pred[c] for c in labels)), ratio(t, sum(n_gold[c] for c in labels))
        return pr, rc, f1(pr, rc)
    per = {c: (ratio(tp[c], n_pred[c]), ratio(tp[c], n_gold[c])) for c in labels}
    per = {c: (pr, rc, f1(pr, rc)) for c, (pr, rc) in per.items()}
    if average is None:
        return per
    weights = {c: 1.0 if average == "macro" else n_gold[c] for c in labels}
    total = sum(weights.values())
    return tuple(ratio(sum(weights[c] * per[c][k] for c in labels), total) for k in range(3))


__all__ = ["BLEUScore", "RougeScore", "accuracy", "bleu_from_statistics", "bleu_statistics",
           "chrf_from_statistics", "chrf_statistics", "classification_accuracy", "corpus_bleu",
           "corpus_chrf", "ngrams", "normalize_answer", "perplexity", "precision_recall_f1", "rouge",
           "rouge_tokenize", "sentence_bleu", "sentence_chrf", "sequence_perplexity", "squad_exact_match",
           "squad_f1", "token_f1", "tokenize_13a"]
