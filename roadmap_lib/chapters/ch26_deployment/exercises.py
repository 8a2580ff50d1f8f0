"""Checks for chapter 26's exercises, with their own cases and reference (not in the notebook's
namespace), and the usual mistakes, each named in the message when a learner makes it."""

from __future__ import annotations

import json
import math

import torch

from roadmap_lib.exercises import ExerciseError, check_equal, check_function

# --- Exercise 26.1: read a server-sent event stream --------------------------------------------


def _chunk(text: str) -> str:
    return "data: " + json.dumps({"object": "text_completion",
                                  "choices": [{"index": 0, "text": text, "finish_reason": None}]})


_DONE = "data: [DONE]"
SSE_CASES = [
    ([_chunk("Hel"), "", _chunk("lo"), "", _DONE, ""], "Hello"),
    ([_chunk("a"), "", _chunk(" "), "", _chunk(" b "), "", _DONE, ""], "a  b "),
    ([": keep-alive", "", _chunk("x"), "", _DONE, "", _chunk("after the end")], "x"),
    ([_chunk(""), "", _DONE], ""),
]


def _stream_text(lines, *, stop=True) -> str:
    out = []
    for line in lines:
        if not line.startswith("data: "):
            continue
        if line == _DONE:
            if stop:
                break
            continue
        out.append(json.loads(line[len("data: "):])["choices"][0]["text"])
    return "".join(out)


STREAM_MISTAKES = {
    "the text was stripped; spaces are tokens too, keep them": lambda lines: _stream_text(lines).strip(),
    "reading past 'data: [DONE]', which ends the stream": lambda lines: _stream_text(lines, stop=False),
    "every line is parsed as JSON: lines that are empty, comments (starting with ':') and the final "
    "'data: [DONE]' are not JSON": lambda lines: "".join(json.loads(ln[len("data: "):])["choices"][0]["text"]
                                                          for ln in lines if ln),
    "the pieces are joined with a space: the chunks already carry their own spaces, concatenate them":
        lambda lines: " ".join(json.loads(ln[len("data: "):])["choices"][0]["text"]
                               for ln in lines[:lines.index(_DONE)] if ln.startswith("data: ")),
}


def check_stream_text(fn) -> None:
    """``fn(lines) -> str``: the text of an OpenAI-style completion stream."""
    for lines, want in SSE_CASES:
        try:
            fn(list(lines))
        except NotImplementedError as err:
            raise ExerciseError("stream_text is not written yet (it raised NotImplementedError).") from err
        except Exception as err:
            likely = next((words for words, wrong in STREAM_MISTAKES.items()
                           if _raises(wrong, lines, type(err))),
                          "lines that are empty, comments (starting with ':') and the final 'data: [DONE]' "
                          "are not JSON")
            raise ExerciseError(f"stream_text({lines!r}) raised {type(err).__name__}: {err}. "
                                f"Likely mistake: {likely}") from err
    check_equal(fn, [((list(lines),), want) for lines, want in SSE_CASES], name="stream_text",
                mistakes=STREAM_MISTAKES)


def _raises(wrong, lines, kind) -> bool:
    try:
        wrong(list(lines))
    except Exception as err:  # noqa: BLE001 - the same kind of exception as the answer's
        return type(err) is kind
    return False


# --- Exercise 26.2: tail latency, nearest rank --------------------------------------------------


def _nearest_rank(latencies: torch.Tensor, q: float) -> torch.Tensor:
    s = latencies.sort().values
    return s[max(math.ceil(q / 100 * len(s)) - 1, 0)]


def _unsorted(latencies, q):
    return latencies[max(math.ceil(q / 100 * len(latencies)) - 1, 0)]


def _interpolated(latencies, q):
    return torch.quantile(latencies, q / 100)


def _off_by_one(latencies, q):
    s = latencies.sort().values
    return s[min(math.ceil(q / 100 * len(s)), len(s) - 1)]


def _mean(latencies, q):
    return latencies.mean()


PERCENTILE_MISTAKES = {
    "the latencies are not sorted before taking the rank": _unsorted,
    "interpolating between two samples (torch.quantile); the nearest rank is always a "
    "latency some request really had": _interpolated,
    "off by one: rank ceil(q/100 * n) is 1-based, index it with - 1": _off_by_one,
    "the mean is not a percentile: one slow request in a hundred hides in it": _mean,
}


def check_percentile(fn) -> None:
    """``fn(latencies (n,), q) -> scalar``: the nearest-rank ``q``-th percentile."""
    g = torch.Generator().manual_seed(26)
    heavy = torch.distributions.Exponential(torch.tensor(5.0)).sample((37,))  # a long right tail
    # case 1 is chosen so that every declared mistake gives a different wrong answer on it
    first = torch.tensor([0.31, 0.05, 0.92, 0.47, 0.18, 0.66, 0.74, 0.02, 0.55, 0.89])
    cases = [((first, 50), _nearest_rank(first, 50))]
    for n, q in [(10, 95), (37, 99), (1, 50), (20, 90)]:
        x = heavy[:n] if n == 37 else torch.rand(n, generator=g)
        cases.append(((x, q), _nearest_rank(x, q)))
    check_function(fn, cases, name="percentile", atol=0, rtol=0, mistakes=PERCENTILE_MISTAKES)


# --- Exercise 26.3: predict, then measure: Little's law -------------------------------------------


def _little(concurrency, requests_per_s):
    return concurrency / requests_per_s


def _as_tensor(f):
    return lambda *a: torch.tensor(float(f(*a)))


LITTLE_MISTAKES = {
    "the ratio is upside down: more clients at the same throughput must mean a longer wait, not a "
    "shorter one": lambda c, x: x / c,
    "1 / throughput is the time between two answers, not the time one request waits: the "
    "concurrency requests share the server": lambda c, x: 1 / x,
}


def check_little(fn) -> None:
    """``fn(concurrency, requests_per_s) -> seconds``: the mean latency a closed loop of
    ``concurrency`` clients must see at that throughput (Little's law, L = lambda W)."""
    cases = [(1, 10.0), (4, 10.0), (16, 32.0), (8, 2.5)]
    check_function(_as_tensor(fn), [(c, torch.tensor(_little(*c))) for c in cases],
                   name="predicted_latency",
                   mistakes={words: _as_tensor(wrong) for words, wrong in LITTLE_MISTAKES.items()})


__all__ = ["check_little", "check_percentile", "check_stream_text"]
