"""The checks of chapter 08's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (T5 span corruption from
``roadmap_lib.objectives.span_corrupt`` run on words, hand-made BART inputs, the library's T5
buckets) and declares, as small wrong implementations, the mistakes it names in plain words
("likely mistake: ...").
"""

from __future__ import annotations

import math

import torch

from roadmap_lib.exercises import check_equal, check_function
from roadmap_lib.objectives import span_corrupt
from roadmap_lib.positional import t5_relative_position_bucket

# ---- exercise 08.1: undo span corruption ---------------------------------------------------------

_SENTENCES = [
    "the cat sat on the mat and looked at the dog",
    "a quick brown fox jumps over the lazy dog near the river bank",
    "she sells sea shells by the sea shore every summer morning",
    "we read the book twice before we understood its last chapter",
    "the train left the station late because of the snow",
    "many small models learn the same words in the same order",
]


def _is_sentinel(word: str) -> bool:
    return word.startswith("<extra_id_")


def _spans(target, *, first_only=False, run_on=False):
    spans, current = {}, None
    for k, word in enumerate(target):
        if _is_sentinel(word):
            if run_on:
                spans[word] = [w for w in target[k + 1:] if not _is_sentinel(w)]
            else:
                current = spans.setdefault(word, [])
        elif not run_on:
            current.append(word)
    return {s: ws[:1] for s, ws in spans.items()} if first_only else spans


REBUILD_MISTAKES = {
    "each sentinel is replaced by only the first word of its span: a span can hide several words":
        lambda noisy, target: [w for x in noisy for w in (_spans(target, first_only=True)[x] if _is_sentinel(x) else [x])],
    "the sentinels are kept in the output: each one is REPLACED by the words it hides":
        lambda noisy, target: [w for x in noisy for w in ([x, *_spans(target)[x]] if _is_sentinel(x) else [x])],
    "a span's words run on to the end of the target: a span stops at the next sentinel":
        lambda noisy, target: [w for x in noisy for w in (_spans(target, run_on=True)[x] if _is_sentinel(x) else [x])],
    "the sentinels are dropped, and the words they hide with them: look them up in the target":
        lambda noisy, target: [x for x in noisy if not _is_sentinel(x)],
}


def rebuild_cases() -> list[tuple[tuple[list[str], list[str]], list[str]]]:
    """(noisy, target) word lists from T5's span corruption of fixed sentences, and the sentence."""
    cases = []
    for k, sentence in enumerate(_SENTENCES):
        words = sentence.split()
        sentinels = [-(i + 1) for i in range(100)]
        noisy, target = span_corrupt(list(range(len(words))), sentinel_ids=sentinels, noise_density=0.3, mean_span=2.0,
                                     generator=torch.Generator().manual_seed(k))
        noisy, target = ([words[i] if i >= 0 else f"<extra_id_{-i - 1}>" for i in seq] for seq in (noisy, target))
        cases.append(((noisy, target), words))
    return cases


def check_rebuild(fn) -> None:
    """Exercise 08.1: ``fn(noisy, target)`` gives back the sentence T5's span corruption started from."""
    check_equal(fn, rebuild_cases(), name="rebuild", mistakes=REBUILD_MISTAKES)


# ---- exercise 08.2: text infilling ---------------------------------------------------------------


def _infill(words, spans, *, per_word=False, empty=True, move=True, tail=True):
    out, pos = [], 0
    for start, length in spans:
        if length == 0 and not empty:
            continue
        out += words[pos:start] + ["<mask>"] * (length if per_word and length else 1)
        pos = start + length if move else start
    return out + words[pos:] if tail else out


INFILL_MISTAKES = {
    "each hidden word gets its own <mask>: BART replaces a whole span by ONE <mask>":
        lambda w, s: _infill(w, s, per_word=True),
    "a span of length 0 inserts nothing: it inserts one <mask> before words[start]":
        lambda w, s: _infill(w, s, empty=False),
    "the cursor is not moved past the span: its words are kept after the <mask>":
        lambda w, s: _infill(w, s, move=False),
    "the words after the last span are dropped": lambda w, s: _infill(w, s, tail=False),
}


def check_infill(fn) -> None:
    """Exercise 08.2: ``fn(words, spans)`` is BART's text-infilling input (one ``<mask>`` per span)."""
    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"]
    check_equal(fn, [
        ((words, [(1, 2)]), ["the", "<mask>", "fox", "jumps", "over", "the", "lazy", "dog"]),
        ((words, [(0, 1), (4, 0), (6, 3)]), ["<mask>", "quick", "brown", "fox", "<mask>", "jumps", "over", "<mask>"]),
        ((words, [(2, 0), (5, 2)]), ["the", "quick", "<mask>", "brown", "fox", "jumps", "<mask>", "lazy", "dog"]),
        ((words, [(9, 0)]), [*words, "<mask>"]),
        ((words, []), words),
    ], name="infill", mistakes=INFILL_MISTAKES)


# ---- exercise 08.3: T5's relative-position buckets -----------------------------------------------


def _bucket(rel, num_buckets, max_distance, *, negative_up=False, clamp=True, signed=True, halve=True,
            rounding=False):
    n = num_buckets // 2 if halve else num_buckets
    offset = ((rel < 0) if negative_up else (rel > 0)).long() * n if signed else torch.zeros_like(rel)
    d = rel.abs()
    exact = n // 2
    log_part = torch.log(d.float().clamp_min(1) / exact) / math.log(max_distance / exact) * (n - exact)
    far = exact + (log_part.round().long() if rounding else log_part.long())
    if clamp:
        far = far.clamp_max(n - 1)
    return offset + torch.where(d < exact, d, far)


BUCKET_MISTAKES = {
    "the offset goes to the negative distances: a key AFTER the query (key - query > 0) gets the upper half":
        lambda r, b, d: _bucket(r, b, d, negative_up=True),
    "the far distances are not clamped: every distance beyond max_distance shares the half's last bucket":
        lambda r, b, d: _bucket(r, b, d, clamp=False),
    "the sign is ignored: in the encoder, keys before and after the query get different halves":
        lambda r, b, d: _bucket(r, b, d, signed=False),
    "each direction uses all num_buckets: in the encoder each direction gets half of them":
        lambda r, b, d: _bucket(r, b, d, halve=False),
    "the log part is rounded: T5 truncates it (floor, for these positive values)":
        lambda r, b, d: _bucket(r, b, d, rounding=True),
}


def check_bucket(fn) -> None:
    """Exercise 08.3: ``fn(rel, num_buckets, max_distance)`` against the library's T5 buckets
    (the answer may not call them)."""
    rel = torch.arange(-150, 151)
    check_function(fn, [((rel, b, d), t5_relative_position_bucket(rel, True, b, d))
                        for b, d in [(16, 32), (32, 128), (8, 20)]],
                   name="bucket", mistakes=BUCKET_MISTAKES, forbid=[t5_relative_position_bucket])


# ---- exercise 08.4: predict, then measure: the length of a T5 target -----------------------------

#: (words n, noise density d, mean span mu): T5's own setting (512 tokens, 15%, spans of 3) and others
TARGET_LENGTH_CASES = [(512, 0.15, 3.0), (100, 0.3, 3.0), (200, 0.5, 5.0), (64, 0.15, 2.0), (400, 0.1, 1.0)]
TARGET_LENGTH_TOLERANCE = 0.75  # tokens: rounding the counts to whole words moves the mean by < 0.7 here


def measured_target_length(n: int, noise_density: float, mean_span: float, *, samples: int = 100,
                           seed: int = 0) -> float:
    """Mean number of target tokens (sentinels, hidden words and the final ``</s>``) that
    :func:`roadmap_lib.objectives.span_corrupt` gives for ``samples`` random ``n``-word sequences."""
    g = torch.Generator().manual_seed(seed)
    sentinels = [-(k + 1) for k in range(n)]  # never short of sentinels
    total = 0
    for _ in range(samples):
        ids = torch.randint(1000, (n,), generator=g).tolist()
        _, target = span_corrupt(ids, sentinel_ids=sentinels, noise_density=noise_density, mean_span=mean_span,
                                 generator=g)
        total += len(target) + 1  # + </s>
    return total / samples


TARGET_LENGTH_MISTAKES = {
    "the final </s> is not counted: the decoder is trained to write it too":
        lambda n, d, mu: d * n * (1 + 1 / mu),
    "the sentinels are not counted: each span is announced by its own sentinel in the target":
        lambda n, d, mu: d * n + 1,
    "one sentinel per hidden word: there is one per SPAN, and a span hides mu words on average":
        lambda n, d, mu: 2 * d * n + 1,
    "that is the length of the input (kept words + one sentinel per span + </s>), not of the target":
        lambda n, d, mu: n - d * n + d * n / mu + 1,
}


def check_target_length(fn) -> None:
    """Exercise 08.4: ``fn(n, noise_density, mean_span)`` predicts the mean target length (``</s>``
    included); each case is compared with :func:`measured_target_length`, a measurement over
    simulated span corruption, within :data:`TARGET_LENGTH_TOLERANCE` tokens."""
    cases = []
    for n, d, mu in TARGET_LENGTH_CASES:
        measured = measured_target_length(n, d, mu)
        print(f"n = {n}, noise density {d}, mean span {mu}: measured {measured:.2f} target tokens")
        cases.append(((n, d, mu), torch.tensor(measured, dtype=torch.float64)))
    check_function(lambda n, d, mu: torch.as_tensor(float(fn(n, d, mu)), dtype=torch.float64), cases,
                   name="expected_target_length", atol=TARGET_LENGTH_TOLERANCE, rtol=0.0,
                   mistakes=TARGET_LENGTH_MISTAKES)
