"""Sequence labelling with BIO tags: spans out of tags, tags out of spans, span-level P/R/F1.

A tagger labels each token ``O`` (outside), ``B-TYPE`` (begins a span of TYPE) or ``I-TYPE``
(inside, continues the span). The *metric* is not per token: a predicted span counts only when
its type, start and end all equal a gold span's (CoNLL-2000's ``conlleval``, which seqeval
reproduces). A span here is ``(type, start, end)`` with ``end`` **exclusive** (Python slicing:
``tokens[start:end]``; seqeval's ``get_entities`` reports the last index instead, ``end - 1``).

Two ways to read tags that do not follow the scheme, as in seqeval:

- **default** (``strict=False``, conlleval and seqeval's default): a span starts at every ``B-``,
  at an ``I-`` that follows ``O`` (an ``I-`` without its ``B-``), and wherever the type changes
  (``B-PER I-LOC`` is two spans, ``PER`` then ``LOC``); it ends before the next ``O``, ``B-`` or
  type change.
- **strict** (``strict=True``, seqeval's ``mode="strict", scheme=IOB2``): only ``B-X`` followed by
  ``I-X``... is a span; an ``I-`` without a ``B-`` of the same type opens nothing and is dropped
  (``B-PER I-LOC`` is the one span ``PER``; ``O I-PER I-PER`` is none).

The two agree on well-formed tags and differ only on predictions that break the scheme, so a
tagger that emits stray ``I-`` tags scores higher in the default mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Span = tuple[str, int, int]  # (type, start, end), end exclusive


def _split(tag: str, where: str) -> tuple[str, str]:
    if not isinstance(tag, str):
        raise TypeError(f"{where}: expected str tags, got {type(tag).__name__} {tag!r}")
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[0] in "BI" and tag[1] == "-":
        return tag[0], tag[2:]
    raise ValueError(f"{where}: expected 'O', 'B-TYPE' or 'I-TYPE', got {tag!r}")


def bio_to_spans(tags: Sequence[str], *, strict: bool = False) -> list[Span]:
    """The spans ``[(type, start, end), ...]`` (end exclusive, in order) of one sentence's tags.

    ``strict=False`` reads tags as conlleval/seqeval's default, ``strict=True`` as seqeval's
    strict IOB2 mode (module docstring).
    """
    if isinstance(tags, str):
        raise TypeError(f"tags: expected a sequence of tags, got the string {tags!r}")
    spans: list[Span] = []
    kind, start = None, None  # the open span
    for i, tag in enumerate(tags):
        prefix, label = _split(tag, f"tags[{i}]")
        continues = prefix == "I" and kind == label
        if kind is not None and not continues:
            spans.append((kind, start, i))
            kind = None
        if prefix == "B" or (prefix == "I" and not continues and not strict):
            kind, start = label, i
    if kind is not None:
        spans.append((kind, start, len(tags)))
    return spans


def spans_to_bio(spans: Sequence[Span], length: int) -> list[str]:
    """Tags (``length`` of them) for non-overlapping ``(type, start, end)`` spans; the inverse of
    :func:`bio_to_spans` on well-formed tags."""
    if not isinstance(length, int) or length < 0:
        raise ValueError(f"length: expected an int >= 0, got {length!r}")
    tags = ["O"] * length
    for span in spans:
        if len(span) != 3:
            raise ValueError(f"spans: expected (type, start, end) triples, got {span!r}")
        kind, start, end = span
        if not 0 <= start < end <= length:
            raise ValueError(f"spans: expected 0 <= start < end <= length={length}, got {span!r}")
        if any(t != "O" for t in tags[start:end]):
            raise ValueError(f"spans: expected non-overlapping spans, got {span!r} over a tagged token")
        tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
    return tags


@dataclass(frozen=True)
class SpanScore:
    precision: float
    recall: float
    f1: float
    n_pred: int  # predicted spans
    n_gold: int  # gold spans
    n_correct: int  # predicted spans equal (type, start, end) to a gold span


def _score(correct: int, n_pred: int, n_gold: int) -> SpanScore:
    p = correct / n_pred if n_pred else 0.0  # seqeval: 0 when there is nothing to divide by
    r = correct / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return SpanScore(p, r, f, n_pred, n_gold, correct)


def span_scores(pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], *, strict: bool = False,
                by_type: bool = False) -> SpanScore | dict[str, SpanScore]:
    """Micro-averaged span precision, recall and F1 over sentences (seqeval's ``f1_score``
    default): the counts of predicted, gold and exactly-matching spans are summed over the corpus
    before dividing. ``pred`` and ``gold`` are lists of tag sequences, sentence by sentence, of
    equal lengths. ``by_type=True`` gives ``{type: SpanScore}`` for each type seen, plus
    ``"micro"``. A score with nothing to divide is 0, as in seqeval."""
    if len(pred) != len(gold):
        raise ValueError(f"pred: expected {len(gold)} sentences (as many as gold), got {len(pred)}")
    counts: dict[str, list[int]] = {}
    for k, (p, g) in enumerate(zip(pred, gold)):
        if len(p) != len(g):
            raise ValueError(f"pred[{k}]: expected {len(g)} tags (as many as gold[{k}]), got {len(p)}")
        ps, gs = set(bio_to_spans(p, strict=strict)), set(bio_to_spans(g, strict=strict))
        for kind, *_ in ps | gs:
            counts.setdefault(kind, [0, 0, 0])
        for s in ps:
            counts[s[0]][1] += 1
            counts[s[0]][0] += s in gs
        for s in gs:
            counts[s[0]][2] += 1
    micro = _score(*(sum(c[i] for c in counts.values()) for i in range(3)))
    if not by_type:
        return micro
    return {**{k: _score(*c) for k, c in sorted(counts.items())}, "micro": micro}


__all__ = ["Span", "SpanScore", "bio_to_spans", "span_scores", "spans_to_bio"]
