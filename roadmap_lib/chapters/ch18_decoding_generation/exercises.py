"""The checks of chapter 18's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (from the core modules), so the
notebook's namespace holds no reference a student could call, and declares the usual wrong answers
in plain words: as small wrong functions (``check_function(..., mistakes=...)``), as wrong regular
expressions whose accepted strings are compared with the student's, or as tests on a prediction.
"""

from __future__ import annotations

import torch

from roadmap_lib.chapters.ch18_decoding_generation.experiments import distinct_n, sample_texts
from roadmap_lib.constrained import Regex, RegexConstraint
from roadmap_lib.decoding import generate
from roadmap_lib.exercises import ExerciseError, check_close, check_function, check_true
from roadmap_lib.logits_processors import MinP, RepetitionPenalty

NEG_INF = float("-inf")

# ---- exercise 18.1: predict, then measure distinct-2 against temperature ---------------------------

TEMPERATURES = (0.5, 1.5)

#: ``description -> predicate(predicted)``: a prediction that makes the mistake satisfies it.
PREDICTION_MISTAKES = {
    "distinct-2 is a share between 0 and 1 (distinct bigrams / all bigrams), not a percentage":
        lambda p: any(v > 1 for v in p.values()),
    "the order is reversed: a higher temperature flattens the distribution, so samples differ more, "
    "not less": lambda p: p[0.5] > p[1.5],
    "both predictions are equal: temperature changes how different the samples are":
        lambda p: p[0.5] == p[1.5],
}


def measure_distinct(model, vocab, prompts: list[str], seed: int = 0) -> dict[float, float]:
    """Distinct-2 among 4 continuations of 40 characters of each prompt, averaged over prompts,
    at each of :data:`TEMPERATURES` (seed ``seed``)."""
    out = {}
    for t in TEMPERATURES:
        texts = sample_texts(model, vocab, prompts, new_tokens=40, seed=seed, samples_per_prompt=4, temperature=t)
        out[t] = sum(distinct_n(texts[i:i + 4]) for i in range(0, len(texts), 4)) / (len(texts) // 4)
    return out


def check_distinct_prediction(predicted, measured: dict[float, float]) -> None:
    """Exercise 18.1: ``predicted`` is ``{0.5: share, 1.5: share}``; each within 0.1 of the
    measurement, in the right order."""
    if not isinstance(predicted, dict) or set(predicted) != set(TEMPERATURES):
        raise ExerciseError(f"predict_distinct() should return {{0.5: ..., 1.5: ...}}, got {predicted!r}")
    for words, makes_it in PREDICTION_MISTAKES.items():
        if makes_it(predicted):
            raise ExerciseError(f"likely mistake: {words}. Your prediction: {predicted}")
    check_true(predicted[0.5] < predicted[1.5], fail="higher temperature should give more diversity",
               success="the order is right")
    for t in TEMPERATURES:
        check_close(predicted[t], measured[t], name=f"distinct-2 at T = {t}", atol=0.1, rtol=0)


# ---- exercise 18.2: min-p by hand -------------------------------------------------------------------


def _min_p(logits, min_p, *, threshold="relative", fill=NEG_INF, batch_max=False, invert=False):
    probs = logits.softmax(-1)
    top = probs.max() if batch_max else probs.max(-1, keepdim=True).values
    if threshold == "relative":
        keep = probs >= min_p * top
    elif threshold == "absolute":
        keep = probs >= min_p
    else:  # compared on the logits
        keep = logits >= min_p * logits.max(-1, keepdim=True).values
    return logits.masked_fill(keep if invert else ~keep, fill)


MIN_P_MISTAKES = {
    "the threshold is min_p itself, not min_p times the row's largest probability (that is epsilon "
    "sampling)": lambda x, p: _min_p(x, p, threshold="absolute"),
    "the threshold is taken on the logits (min_p times the largest logit), not on the probabilities":
        lambda x, p: _min_p(x, p, threshold="logits"),
    "the largest probability is taken over the whole batch, not per row": lambda x, p: _min_p(x, p, batch_max=True),
    "the mask is inverted: it removes the tokens above the threshold and keeps the tail":
        lambda x, p: _min_p(x, p, invert=True),
    "removed tokens are set to 0, not -inf: a logit of 0 is still a possible token": lambda x, p: _min_p(x, p, fill=0.0),
}


def min_p_cases():
    gen = torch.Generator().manual_seed(5)
    cases = []
    for p in (0.05, 0.2, 0.5, 0.9):
        x = torch.randn(4, 138, generator=gen) * 3
        cases.append(((x, p), MinP(p)(None, x)))
    return cases


def check_min_p(fn) -> None:
    """Exercise 18.2: ``fn(logits (batch, vocab), min_p)`` equals transformers' min-p warper."""
    check_function(fn, min_p_cases(), name="my_min_p", mistakes=MIN_P_MISTAKES, forbid=[MinP])


# ---- exercise 18.3: a grammar for times --------------------------------------------------------------

#: Wrong patterns a student writes, and what each gets wrong.
TIME_MISTAKES = {
    "the hour [0-2]\\d also lets 24 to 29 through: the hours 20-23 need their own alternative":
        r"[0-2]\d:[0-5]\d\.",
    "the minutes \\d\\d let 60 to 99 through: the tens of minutes only go from 0 to 5":
        r"([01]\d|2[0-3]):\d\d\.",
    "the leading zero is optional, so 7:45. passes: HH:MM always has two hour digits":
        r"([01]?\d|2[0-3]):[0-5]\d\.",
    "the full stop is not escaped: a bare . matches any character": r"([01]\d|2[0-3]):[0-5]\d.",
    "the final full stop is missing": r"([01]\d|2[0-3]):[0-5]\d",
}


def time_rule() -> dict[str, bool]:
    """``{string: valid}``: every ``dd:dd.`` and a few near misses."""
    rule = {f"{h:02d}:{m:02d}.": h < 24 and m < 60 for h in range(100) for m in range(100)}
    rule.update({"7:45.": False, "07:45": False, "07:4.": False, "007:45.": False, "07:45x": False,
                 "07:45.5": False})
    return rule


def _accepted(pattern: str, strings) -> set[str]:
    regex = Regex(pattern)
    return {s for s in strings if regex.fullmatch(s)}


def check_time_regex(pattern: str, model, vocab, n: int = 32) -> list[str]:
    """Exercise 18.3: ``pattern`` matches exactly the valid times; then ``n`` sampled, masked
    times are all valid. Returns the sampled times."""
    if not isinstance(pattern, str):
        raise ExerciseError(f"TIME should be a string (a regular expression), got {type(pattern).__name__}")
    rule = time_rule()
    try:
        got = _accepted(pattern, rule)
    except ValueError as err:
        raise ExerciseError(f"TIME is not a pattern roadmap_lib.constrained can read: {err}") from err
    wrong = sorted(s for s, ok in rule.items() if (s in got) != ok)
    if wrong:
        likely = next((f"likely mistake: {words}. " for words, bad in TIME_MISTAKES.items()
                       if _accepted(bad, rule) == got), "")
        raise ExerciseError(f"{likely}Your pattern disagrees with the rule on {len(wrong)} strings, e.g. {wrong[:3]}")
    print("Correct: TIME matches exactly the valid times.")
    prompt = "The meeting starts at "
    constraint = RegexConstraint(pattern, list(vocab.chars), prompt_length=len(prompt))
    out = generate(model, torch.stack([vocab.encode(prompt)] * n), 8, processors=[constraint], do_sample=True,
                   generator=torch.Generator().manual_seed(0), stopping=[constraint.done], pad_token_id=0,
                   use_cache=True)
    times = [vocab.decode(r[len(prompt):])[:6] for r in out]
    regex = Regex(pattern)
    check_true(all(regex.fullmatch(t) for t in times), fail=f"some generated times are invalid: {times[:5]}",
               success=f"{n} valid times, e.g. {times[:4]}")
    return times


# ---- exercise 18.4: CTRL's repetition penalty ------------------------------------------------------


def _penalty(ids, logits, theta, *, negative="multiply", positive="divide", count=False, seen_only=True):
    seen = torch.zeros_like(logits, dtype=torch.bool).scatter(1, ids, True)
    times = torch.zeros_like(logits).scatter_add(1, ids, torch.ones_like(ids, dtype=logits.dtype))
    factor = theta ** times if count else theta
    pos = logits / factor if positive == "divide" else logits * factor
    neg = logits * factor if negative == "multiply" else logits / factor
    out = torch.where(logits < 0, neg, pos)
    return torch.where(seen, out, logits) if seen_only else out


REPETITION_MISTAKES = {
    "negative logits are divided too: a negative logit divided by θ > 1 moves towards 0, so the seen "
    "token becomes MORE likely; multiply the negative ones": lambda i, x, t: _penalty(i, x, t, negative="divide"),
    "positive and negative are swapped: positive logits are multiplied and negative ones divided":
        lambda i, x, t: _penalty(i, x, t, negative="divide", positive="multiply"),
    "the penalty is compounded per occurrence (θ to the power of the count): CTRL penalises a seen "
    "token once, however often it occurred": lambda i, x, t: _penalty(i, x, t, count=True),
    "every token is penalised, not only those already in ids": lambda i, x, t: _penalty(i, x, t, seen_only=False),
}


def repetition_cases():
    gen = torch.Generator().manual_seed(18)
    cases = []
    for theta, (batch, seq, vocab) in [(1.3, (2, 6, 10)), (2.0, (3, 12, 20)), (0.8, (1, 9, 12))]:
        ids = torch.randint(0, vocab, (batch, seq), generator=gen)
        ids[:, -2:] = ids[:, :2]  # repeats, so that counting occurrences shows
        logits = torch.randn(batch, vocab, generator=gen) * 2
        cases.append(((ids, logits, theta), RepetitionPenalty(theta)(ids, logits.clone())))
    return cases


def check_repetition_penalty(fn) -> None:
    """Exercise 18.4: ``fn(ids (batch, seq), logits (batch, vocab), penalty)`` equals transformers'
    ``RepetitionPenaltyLogitsProcessor`` (our ``RepetitionPenalty``)."""
    check_function(fn, repetition_cases(), name="my_repetition_penalty", mistakes=REPETITION_MISTAKES,
                   forbid=[RepetitionPenalty])


__all__ = [
    "MIN_P_MISTAKES",
    "PREDICTION_MISTAKES",
    "REPETITION_MISTAKES",
    "TEMPERATURES",
    "TIME_MISTAKES",
    "check_distinct_prediction",
    "check_min_p",
    "check_repetition_penalty",
    "check_time_regex",
    "measure_distinct",
    "min_p_cases",
    "repetition_cases",
    "time_rule",
]
