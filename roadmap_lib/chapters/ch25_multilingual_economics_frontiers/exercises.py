"""The checks of chapter 25's exercises, with the common mistakes each one recognises.

The references live here, not in the notebook, so a student cannot pass by calling them; the
library functions that compute the same thing are forbidden inside the answers.
"""

from __future__ import annotations

import torch

from roadmap_lib import agents, economics, interpret, multilingual
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import agent_study
from roadmap_lib.exercises import ExerciseError, check_close, check_function

# ---- exercise 25.1: accelerator-hours of a training run ------------------------------------------


def _hours(n_params, tokens, peak_flops, mfu, *, per_token=6.0, use_mfu="divide", per_hour=3600.0):
    flops = per_token * n_params * tokens
    rate = {"divide": peak_flops * mfu, "ignore": peak_flops, "multiply": peak_flops / mfu}[use_mfu]
    return torch.tensor(flops / rate / per_hour, dtype=torch.float64)


GPU_HOURS_MISTAKES = {
    "2·N·D counts the forward pass only; training also runs the backward pass (4·N·D more)":
        lambda n, d, p, m: _hours(n, d, p, m, per_token=2.0),
    "the MFU is left out: the accelerator never runs at its peak":
        lambda n, d, p, m: _hours(n, d, p, m, use_mfu="ignore"),
    "the FLOP rate is divided by the MFU instead of multiplied (a lower MFU must mean MORE hours)":
        lambda n, d, p, m: _hours(n, d, p, m, use_mfu="multiply"),
    "the result is in seconds: divide by 3600 for hours":
        lambda n, d, p, m: _hours(n, d, p, m, per_hour=1.0),
}


def gpu_hours_cases():
    return [((n, d, p, m), _hours(n, d, p, m)) for n, d, p, m in
            [(7e9, 2e12, 312e12, 0.4), (1.25e8, 2.5e9, 1e14, 0.5), (70e9, 1.4e12, 989e12, 0.35)]]


def check_gpu_hours(fn) -> None:
    check_function(fn, gpu_hours_cases(), name=getattr(fn, "__name__", "gpu_hours"), rtol=1e-6, mistakes=GPU_HOURS_MISTAKES,
                   forbid=(economics.accelerator_hours, economics.training_cost, economics.training_flops))


# ---- exercise 25.2: the recovered fraction of activation patching --------------------------------

RECOVERED_MISTAKES = {
    "this is the share still missing, (clean - patched) / (clean - corrupt): 1 minus the answer":
        lambda p, c, k: (c - p) / (c - k),
    "the denominator is reversed, (corrupt - clean): the sign flips":
        lambda p, c, k: (p - k) / (k - c),
    "the numerator does not subtract the corrupt run's value":
        lambda p, c, k: p / (c - k),
    "divided by the clean value instead of by the clean-corrupt gap":
        lambda p, c, k: (p - k) / c,
}


def recovered_cases():
    g = torch.Generator().manual_seed(25)
    cases = []
    for clean, corrupt in ((-0.1, -5.0), (2.0, -3.0), (-1.0, -2.5)):
        patched = corrupt + (clean - corrupt) * torch.rand(3, 8, generator=g, dtype=torch.float64) * 1.2
        cases.append(((patched, clean, corrupt), (patched - corrupt) / (clean - corrupt)))
    return cases


def check_recovered(fn) -> None:
    check_function(fn, recovered_cases(), name=getattr(fn, "__name__", "recovered"), rtol=1e-9,
                   mistakes=RECOVERED_MISTAKES, forbid=(interpret.recovered_fraction,))


# ---- exercise 25.3: predict, then measure the token premium --------------------------------------


def _premium(tokenizer, rows, lang, *, how="totals"):
    en = [len(tokenizer.encode(r["en"])) for r in rows]
    other = [len(tokenizer.encode(r[lang])) for r in rows]
    if how == "mean of ratios":
        return torch.tensor(sum(o / e for o, e in zip(other, en)) / len(rows), dtype=torch.float64)
    if how == "inverted":
        return torch.tensor(sum(en) / sum(other), dtype=torch.float64)
    if how == "characters":
        return torch.tensor(sum(len(r[lang]) for r in rows) / sum(len(r["en"]) for r in rows), dtype=torch.float64)
    return torch.tensor(sum(other) / sum(en), dtype=torch.float64)


class Messages(list):
    """A list of parallel messages that prints as its length (error messages stay short)."""

    def __repr__(self) -> str:
        return f"<{len(self)} messages>"


PREMIUM_MISTAKES = {
    "the mean of per-message ratios weighs a 2-token message like a 40-token one; divide the totals":
        lambda t, rows, lang: _premium(t, rows, lang, how="mean of ratios"),
    "inverted: English tokens over the language's tokens":
        lambda t, rows, lang: _premium(t, rows, lang, how="inverted"),
    "this counts characters, not tokens: call tokenizer.encode":
        lambda t, rows, lang: _premium(t, rows, lang, how="characters"),
}


def check_premium(fn, tokenizer, rows) -> None:
    rows = Messages(rows)
    cases = [((tokenizer, rows, lang), _premium(tokenizer, rows, lang)) for lang in ("fr", "ko", "hi")]
    check_function(fn, cases,
                   name=getattr(fn, "__name__", "premium"), rtol=1e-9, mistakes=PREMIUM_MISTAKES,
                   forbid=(multilingual.token_premium, multilingual.token_counts, multilingual.fertility))


def check_prediction(prediction: float, measured: float, tokenizer, rows, lang: str) -> None:
    """The measured premium must be the true one; the prediction is then compared with it."""
    truth = float(_premium(tokenizer, rows, lang))
    check_close(measured, truth, name=f"token premium of {lang}", atol=1e-9)
    if not isinstance(prediction, (int, float)) or not prediction > 0:
        raise ExerciseError(f"prediction: expected a positive number (tokens per English token), got {prediction!r}")
    off = abs(prediction - truth) / truth
    print(f"you predicted {prediction:.2f}; the measurement is {truth:.2f} "
          f"({'within' if off <= 0.25 else 'off by more than'} 25%).")


# ---- exercise 25.4: what an agent run costs ------------------------------------------------------


class Run(agents.Episode):
    """An agent episode that prints as its text (error messages stay short)."""

    def __repr__(self) -> str:
        return f"<run {self.text!r}, {len(self.steps)} model calls>"


def _run(prompt: str, actions: list[tuple[str, str | None]]) -> Run:
    """A hand-made episode: each ``(model output, observation or None)`` in order."""
    ep = Run(prompt=prompt, text=prompt)
    for out, obs in actions:
        ep.steps.append(agents.Step(out, None, obs))
        ep.text += out + (obs or "")
    return ep


def run_cases() -> list[Run]:
    return [_run("a1b0=", [("a", "1"), (":", "1"), (",b", "0"), (":", "1"), ("#1.", None)]),
            _run("a0b1c1=", [("a", "0"), (":", "0"), (",b", "1"), (":", "1"), (",c", "1"), (":", "0"),
                             ("#0.", None)]),
            _run("a1b1=", [("a", "1"), (":", "1"), (",b", "1"), ("1:", None)]),  # ended malformed
            _run("a0b0c0d0=", [("a", "0"), (",g", None)])]  # ended with a tool error


def _tokens(ep, *, how="re-read"):
    total, length = 0, len(ep.prompt)
    for step in ep.steps:
        total += {"re-read": length, "prompt only": len(ep.prompt), "outputs only": 0}.get(how, length) + len(step.output)
        length += len(step.output) + (0 if how == "no observations" else len(step.observation or ""))
    return len(ep.text) if how == "cache" else total


RUN_TOKENS_MISTAKES = {
    "each call must re-read the whole text so far, not only the prompt":
        lambda ep: _tokens(ep, how="prompt only"),
    "the tools' observations are part of the text the next call re-reads":
        lambda ep: _tokens(ep, how="no observations"),
    "this counts only what the model wrote; each call also re-reads the text so far":
        lambda ep: _tokens(ep, how="outputs only"),
    "this is the cost with a KV cache kept across calls (each position once): here every call re-reads the text":
        lambda ep: _tokens(ep, how="cache"),
}


def check_run_tokens(fn) -> None:
    """``fn(episode) -> token positions``, on hand-made runs that answered and that failed."""
    cases = [((ep,), _tokens(ep)) for ep in run_cases()]
    check_function(fn, cases, name=getattr(fn, "__name__", "run_tokens"), atol=0, rtol=0,
                   mistakes=RUN_TOKENS_MISTAKES, forbid=(agent_study.episode_tokens,))


__all__ = ["check_gpu_hours", "check_prediction", "check_premium", "check_recovered", "check_run_tokens"]
