"""The checks of chapter 01's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (so the notebook has no reference in
scope that a student could call) and declares, as small wrong implementations, the mistakes it
names in plain words when an answer matches one of them ("likely mistake: ...").
"""

from __future__ import annotations

import torch

from roadmap_lib.chapters.ch01_why_transformers.recall import (
    AttentionRecall,
    LSTMRecall,
    RecallConfig,
    make_recall_batch,
)
from roadmap_lib.chapters.ch01_why_transformers.timeline import load_timeline
from roadmap_lib.exercises import ExerciseError, _ok, check_close, check_function

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


# ---- exercise 01.4: predict, then measure: what reaches the question -----------------------------

#: The sequence lengths the prediction is made for.
CARRY_LENGTHS = (32, 256)


@torch.no_grad()
def measure_carried_numbers(cfg: RecallConfig) -> dict[str, int]:
    """How many numbers per sequence each model can read, at the last position, about the earlier
    ones, measured by running the models on one batch of length ``cfg.seq_len``.

    LSTM: the state it hands from step to step, read off what ``nn.LSTM`` returns after the last
    step (``h`` and ``c`` of every layer). Attention: the inputs its attention layers turn into keys
    and values, caught by a hook on every block's ``self_attn`` (one key and one value per position
    and block).
    """
    symbols, distance, _ = make_recall_batch(2, cfg, generator=torch.Generator().manual_seed(0))
    lstm = LSTMRecall(cfg).eval()
    _, (h, c) = lstm.lstm(lstm.embed(symbols, distance))
    carried_lstm = h[:, 0].numel() + c[:, 0].numel()  # (layers, batch, d): one sequence's share

    attn = AttentionRecall(cfg).eval()
    seen = []

    def catch(module, args, kwargs):
        _, key, value = (list(args) + [kwargs.get(n) for n in ("query", "key", "value")][len(args):])[:3]
        seen.append(key[0].numel() + value[0].numel())  # batch-first (batch, seq, d): one sequence

    hooks = [layer.self_attn.register_forward_pre_hook(catch, with_kwargs=True) for layer in attn.blocks.layers]
    try:
        attn.train()  # the training path calls self_attn on every block (the inference fast path may not)
        attn(symbols, distance)
    finally:
        for hook in hooks:
            hook.remove()
    return {"lstm": int(carried_lstm), "attention": int(sum(seen))}


def _carry_mistakes(cfg: RecallConfig) -> dict:
    """``description -> predicate(prediction)``: a prediction that makes the mistake satisfies it."""
    d, layers = cfg.d_model, cfg.n_layers
    short, long = CARRY_LENGTHS
    return {
        "the LSTM hands on a cell state c as well as its hidden state h, in each of its layers: count "
        "both, in every layer":
            lambda p: p["lstm"][short] in (d, layers * d),
        "the LSTM's state has the same size at every length: it does not grow with the sequence, and that "
        "fixed size is the bottleneck":
            lambda p: p["lstm"][short] != p["lstm"][long],
        "attention keeps a key and a value for every position, so what it can read grows with the length":
            lambda p: p["attention"][short] == p["attention"][long],
        "count a key and a value (not one of them), for every position, in every block (not one block)":
            lambda p: any(p["attention"][n] in (n * d, layers * n * d) for n in CARRY_LENGTHS),
        "these are counts of numbers, not bytes: a float32 takes 4 bytes, but the question asks for numbers":
            lambda p: p["lstm"][short] == 4 * 2 * layers * d or p["attention"][short] == 4 * 2 * layers * short * d,
    }


#: The mistakes exercise 01.4 names, for the chapter's model sizes.
CARRY_MISTAKES = _carry_mistakes(RecallConfig())


def check_carried_numbers(prediction) -> None:
    """Exercise 01.4: ``prediction`` is ``{"lstm": {32: n, 256: n}, "attention": {32: n, 256: n}}``,
    compared with :func:`measure_carried_numbers` at each length of :data:`CARRY_LENGTHS` (with the
    chapter's model sizes)."""
    shape = '{"lstm": {32: ..., 256: ...}, "attention": {32: ..., 256: ...}}'
    if not isinstance(prediction, dict) or set(prediction) != {"lstm", "attention"} or any(
            not isinstance(prediction[m], dict) or set(prediction[m]) != set(CARRY_LENGTHS) for m in prediction):
        raise ExerciseError(f"the prediction should be {shape}, got {prediction!r}")
    measured = {n: measure_carried_numbers(RecallConfig(seq_len=n)) for n in CARRY_LENGTHS}
    for words, makes_it in CARRY_MISTAKES.items():
        if makes_it(prediction):
            raise ExerciseError(f"likely mistake: {words}. Your prediction: {prediction}; measured: "
                                f"{ {m: {n: measured[n][m] for n in CARRY_LENGTHS} for m in prediction} }")
    for model in ("lstm", "attention"):
        for n in CARRY_LENGTHS:
            check_close(prediction[model][n], measured[n][model], name=f"numbers the {model} model carries at length {n}",
                        atol=0.5, rtol=0)
    _ok(f"measured: the LSTM carries {measured[32]['lstm']} numbers at both lengths; attention "
        f"{measured[32]['attention']:,} at length 32 and {measured[256]['attention']:,} at 256.")
