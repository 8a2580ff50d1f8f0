"""The checks of chapter 01's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (so the notebook has no reference in
scope that a student could call) and declares, as small wrong implementations, the mistakes it
names in plain words when an answer matches one of them ("likely mistake: ...").
"""

from __future__ import annotations

import torch

from roadmap_lib.chapters.ch01_why_transformers.recall import RecallConfig, make_recall_batch
from roadmap_lib.chapters.ch01_why_transformers.timeline import load_timeline
from roadmap_lib.exercises import _ok, check_function

# ---- exercise 01.1: the recall task's answer key -------------------------------------------------


def _rows(symbols):
    return torch.arange(symbols.shape[0])


RECALL_TARGET_MISTAKES = {
    "the distance is counted forward from the first position, not back from the last":
        lambda s, d: s[_rows(s), d],
    "one step too far back: distance 0 is the last symbol, at column -1, so distance k is at column "
    "-1 - k, not -k":
        lambda s, d: s[_rows(s), -d],
    "the column seq_len - distance is one past the end for distance 0: distance 0 is the last symbol, "
    "at column seq_len - 1":
        lambda s, d: s[_rows(s), s.shape[1] - d],
    "only the columns are indexed: each row then gets the symbols of every row's distance; index the "
    "rows with torch.arange(batch) at the same time":
        lambda s, d: s[:, s.shape[1] - 1 - d],
}


def check_recall_target(fn) -> None:
    """Exercise 01.1: ``fn(symbols, distance)`` returns ``symbols[b, seq_len - 1 - distance[b]]``."""
    cfg = RecallConfig(seq_len=12, vocab=100)  # every distance once, 0 (the last symbol) included
    symbols, distance, target = make_recall_batch(12, cfg, distance=torch.arange(12).flip(0),
                                                  generator=torch.Generator().manual_seed(3))
    cases = [((symbols, distance), target)]
    for seed, cfg in [(0, RecallConfig()), (1, RecallConfig(vocab=5, seq_len=9)), (2, RecallConfig(vocab=50))]:
        symbols, distance, target = make_recall_batch(16, cfg, generator=torch.Generator().manual_seed(seed))
        cases.append(((symbols, distance), target))
    check_function(fn, cases, name="recall_target", mistakes=RECALL_TARGET_MISTAKES)


# ---- exercise 01.2: a model of a limited memory --------------------------------------------------

MEMORY_MISTAKES = {
    "`<=` instead of `<`: a memory of m symbols covers distances 0 ... m - 1, not 0 ... m":
        lambda d, m, v: torch.where(torch.as_tensor(d) <= m, 1.0, 1.0 / v),
    "anything older scores 0: a uniform guess among `vocab` symbols is still right 1/vocab of the time":
        lambda d, m, v: torch.where(torch.as_tensor(d) < m, 1.0, 0.0),
    "the comparison is reversed: the recent symbols are the remembered ones, the old ones are guessed":
        lambda d, m, v: torch.where(torch.as_tensor(d) >= m, 1.0, 1.0 / v),
    "the chance level is 1/memory: a guess is uniform among the `vocab` symbols, so it is 1/vocab":
        lambda d, m, v: torch.where(torch.as_tensor(d) < m, 1.0, 1.0 / max(m, 1)),
}


def check_memory_limited_accuracy(fn) -> None:
    """Exercise 01.2: ``fn(distances, memory, vocab)``: 1 within the memory, 1/vocab beyond it."""
    cases = []
    for distances, memory, vocab in [(list(range(6)), 2, 8), (list(range(4)), 0, 4), (list(range(3)), 5, 10),
                                     (list(range(8)), 3, 5)]:
        d = torch.tensor(distances)
        exact = torch.where(d < memory, 1.0, 1.0 / vocab)
        cases.append(((distances, memory, vocab), exact))
    check_function(fn, cases, name="memory_limited_accuracy", mistakes=MEMORY_MISTAKES)


# ---- exercise 01.3: compute-optimal size ---------------------------------------------------------

CHINCHILLA_MISTAKES = {
    "D = 20N is left out: the budget is split as if N = D":
        lambda c: ((c / 6) ** 0.5, (c / 6) ** 0.5),
    "the factor 6 is left out: the cost is C = 6ND FLOPs, not ND":
        lambda c: ((c / 20) ** 0.5, 20 * (c / 20) ** 0.5),
    "N and D are swapped (or D = N/20 was used): D, the tokens, is the larger one, 20 per parameter":
        lambda c: (20 * (c / 120) ** 0.5, (c / 120) ** 0.5),
    "the square root is missing: C = 120 N^2, so N is the square root of C/120":
        lambda c: (c / 120, 20 * c / 120),
}


def _solve_by_bisection(compute: float) -> tuple[float, float]:
    """N with 6 · N · (20 N) = compute, found by bisection on a log scale (not the closed form)."""
    lo, hi = 1.0, 1e20
    for _ in range(200):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if 6 * mid * 20 * mid < compute else (lo, mid)
    n = (lo * hi) ** 0.5
    return n, 20 * n


def check_chinchilla_optimal(fn) -> None:
    """Exercise 01.3: ``fn(compute) -> (N, D)`` with 6ND = compute and D = 20N. The cases include
    Chinchilla's own budget (which gives back its 70B parameters and 1.4T tokens: D/N = 20 there)
    and GPT-3's."""
    by_name = {e.model: e for e in load_timeline()}
    budgets = [6 * by_name[m].parameters * by_name[m].tokens for m in ("Chinchilla", "GPT-3")] + [1e20, 3e25]
    cases = [((c,), tuple(torch.tensor(x, dtype=torch.float64) for x in _solve_by_bisection(c))) for c in budgets]
    check_function(fn, cases, name="chinchilla_optimal", rtol=1e-3, outputs=("N", "D"),
                   mistakes=CHINCHILLA_MISTAKES)
    chin = by_name["Chinchilla"]
    n, d = (float(x) for x in fn(6 * chin.parameters * chin.tokens))
    n3, d3 = (float(x) for x in fn(budgets[1]))
    _ok(f"Chinchilla's budget gives back {n / 1e9:.0f}B parameters on {d / 1e12:.1f}T tokens; GPT-3's "
        f"budget gives {n3 / 1e9:.1f}B parameters on {d3 / 1e12:.2f}T tokens.")
