"""The checks of chapter 23's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers, so the notebook's namespace holds no
reference a student could call, and names a mistake in plain words when an answer matches one of
the small wrong implementations declared here.
"""

from __future__ import annotations

import torch

from roadmap_lib.exercises import check_close, check_function, check_true

# ---- exercise 23.1: the BM25 term weight -----------------------------------------------------------


def _bm25_term(tf, doc_len, avgdl, idf, k1=1.5, b=0.75, *, length=True, plus_one=True, saturate=True):
    norm = k1 * (1 - b + b * doc_len / avgdl) if length else k1 * torch.ones_like(doc_len)
    top = tf * (k1 + 1) if plus_one else tf
    return idf * (top / (tf + norm) if saturate else tf)


BM25_TERM_MISTAKES = {
    "the length normalisation is missing (b·|d|/avgdl): long documents are not discounted":
        lambda tf, dl, avgdl, idf: _bm25_term(tf, dl, avgdl, idf, length=False),
    "the (k1 + 1) factor on top is missing (it keeps tf = 1 at a score of about idf)":
        lambda tf, dl, avgdl, idf: _bm25_term(tf, dl, avgdl, idf, plus_one=False),
    "tf is not saturated: that is plain tf·idf, ten mentions count ten times":
        lambda tf, dl, avgdl, idf: _bm25_term(tf, dl, avgdl, idf, saturate=False),
    "the length ratio is inverted (avgdl/|d|): short documents get discounted instead":
        lambda tf, dl, avgdl, idf: _bm25_term(tf, avgdl * avgdl / dl, avgdl, idf),
}


def bm25_term_cases():
    cases = []
    for seed, n in [(0, 5), (1, 12)]:
        g = torch.Generator().manual_seed(seed)
        tf = torch.randint(1, 8, (n,), generator=g).double()
        dl = torch.randint(5, 300, (n,), generator=g).double()
        avgdl = torch.tensor(60.0, dtype=torch.float64)
        idf = torch.rand(n, generator=g, dtype=torch.float64) * 5
        cases.append(((tf, dl, avgdl, idf), _bm25_term(tf, dl, avgdl, idf)))
    return cases


def check_bm25_term(fn) -> None:
    """Exercise 23.1: ``fn(tf, doc_len, avgdl, idf)`` with k1 = 1.5, b = 0.75, elementwise."""
    check_function(fn, bm25_term_cases(), mistakes=BM25_TERM_MISTAKES, atol=1e-9, rtol=1e-9)


# ---- exercise 23.2: reciprocal rank fusion scores ---------------------------------------------------


def _rrf_scores(ranks, k=60.0, *, first=1, use_k=True):
    r = ranks.double()  # ranks are given from 1
    contrib = 1.0 / ((k if use_k else 0.0) + r - (1 - first))
    return torch.where(ranks > 0, contrib, torch.zeros_like(contrib)).sum(0)


RRF_MISTAKES = {
    "the ranks were counted from 0 (the best document has rank 1 in 1/(k + rank))":
        lambda ranks: _rrf_scores(ranks, first=0),
    "k is missing: 1/rank lets one first place outweigh everything else":
        lambda ranks: _rrf_scores(ranks, use_k=False),
    "documents a ranker did not return (rank 0) were given a contribution":
        lambda ranks: (1.0 / (60.0 + ranks.double())).sum(0),
    "the sum runs over documents instead of over rankers": lambda ranks: _rrf_scores(ranks.T),
}


def rrf_cases():
    cases = []
    for seed, (m, n) in [(0, (2, 6)), (1, (3, 10))]:
        g = torch.Generator().manual_seed(seed)
        ranks = torch.stack([torch.randperm(n, generator=g) + 1 for _ in range(m)])
        ranks[ranks > n - 2] = 0  # each ranker returned only its top n - 2
        cases.append(((ranks,), _rrf_scores(ranks)))
    return cases


def check_rrf_scores(fn) -> None:
    """Exercise 23.2: ``fn(ranks)``: ``ranks`` ``(rankers, docs)``, 1 = best, 0 = not returned;
    returns ``(docs,)`` fused scores with k = 60."""
    check_function(fn, rrf_cases(), mistakes=RRF_MISTAKES, atol=1e-12, rtol=1e-9)


# ---- exercise 23.3: predict, then measure the 2x loss ----------------------------------------------


def check_long_measure(measured: dict, recorded: dict, prediction: str) -> None:
    """Exercise 23.3: ``measured[method]`` = loss beyond position 64 at 2x for "linear" and "ntk"
    on the shipped seed-0 model; ``recorded`` is the results file's seed-0 summary."""
    check_true(isinstance(measured, dict) and set(measured) == {"linear", "ntk"},
               fail=f"measured: expected a dict with keys 'linear' and 'ntk', got {measured!r}",
               success="both methods measured.")
    for m in ("linear", "ntk"):
        check_close(measured[m], recorded[m]["2"]["beyond"], name=f"loss beyond 64 at 2x, {m}",
                    atol=2e-3, rtol=0)
    better = min(measured, key=measured.get)
    print(f"Your prediction: {prediction!r}; measured lower loss: {better!r} "
          f"({'right' if prediction == better else 'not this time: see the solution'}).")


# ---- exercise 23.4: was the needle found? ----------------------------------------------------------


def _key_found(logits, ids, key_len, *, shift=1, last=True, every=True):
    n = ids.shape[1]
    targets = ids[:, n - key_len:] if shift else ids[:, n - 1 - key_len:n - 1]
    scores = logits[:, -key_len:] if last else logits[:, :key_len]
    hits = scores.argmax(-1) == (targets if last else ids[:, shift:key_len + shift])
    return (hits.all(1) if every else hits.any(1)).double()


KEY_FOUND_MISTAKES = {
    "shifted by one: the logits at position t predict ids[t + 1], compare them with the *next* ids, "
    "not the ids at the same positions": lambda lg, ids, k: _key_found(lg, ids, k, shift=0),
    "counts a window when *any* key character is right; the key is found only when *all* are":
        lambda lg, ids, k: _key_found(lg, ids, k, every=False),
    "looked at the first key_len positions; the key is at the end of the window":
        lambda lg, ids, k: _key_found(lg, ids, k, last=False),
}


def key_found_cases():
    """Windows whose logits favour the key with some characters wrong, and copies of the ids one
    step early (the shifted mistake's favourite), so that each mistake gives another answer."""
    g = torch.Generator().manual_seed(23)
    cases = []
    for n, length, vocab, key_len in ((6, 12, 10, 4), (8, 30, 15, 5), (5, 9, 7, 3)):
        ids = torch.randint(0, vocab, (n, length + 1), generator=g)
        logits = torch.randn(n, length, vocab, generator=g)
        for i in range(n):  # row i: the first (i mod (key_len + 1)) key characters get the top score
            right = i % (key_len + 1)
            for j in range(right):
                t = length - key_len + j
                logits[i, t, ids[i, t + 1]] += 10.0
        logits[0, -key_len:].scatter_(-1, ids[0, -key_len - 1:-1, None], 50.0)  # row 0: current ids on top
        ids[1, 1:key_len + 1] = logits[1, :key_len].argmax(-1)  # row 1: the start looks right
        cases.append(((logits, ids, key_len), _key_found(logits, ids, key_len)))
    return cases


def check_key_found(fn) -> None:
    """Exercise 23.4: ``fn(logits, ids, key_len)`` -> ``(n,)`` bools, True where every key
    character (the last ``key_len`` of ``ids``) is the top choice of its logits."""

    def as_float(*args):
        return torch.as_tensor(fn(*args)).double()

    check_function(as_float, key_found_cases(), name="key_found", mistakes=KEY_FOUND_MISTAKES, atol=0, rtol=0)


__all__ = ["check_bm25_term", "check_key_found", "check_long_measure", "check_rrf_scores"]
