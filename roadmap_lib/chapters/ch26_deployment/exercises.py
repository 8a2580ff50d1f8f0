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


def check_stream_text(fn) -> None:
    """``fn(lines) -> str``: the text of an OpenAI-style completion stream."""
    for lines, want in SSE_CASES:
        try:
            got = fn(list(lines))
        except NotImplementedError as err:
            raise ExerciseError("stream_text is not written yet (it raised NotImplementedError).") from err
        except Exception as err:
            raise ExerciseError(
                f"stream_text({lines!r}) raised {type(err).__name__}: {err}. Lines that are empty, "
                "comments (starting with ':') and the final 'data: [DONE]' are not JSON.") from err
        if isinstance(got, str) and got == want.strip() != want:
            raise ExerciseError(f"stream_text returned {got!r}, expected {want!r}: likely mistake: "
                                "the text was stripped; spaces are tokens too, keep them")
        if isinstance(got, str) and got.startswith(want) and got != want:
            raise ExerciseError(f"stream_text returned {got!r}, expected {want!r}: likely mistake: "
                                "reading past 'data: [DONE]', which ends the stream")
    check_equal(fn, [((list(lines),), want) for lines, want in SSE_CASES], name="stream_text")


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
    check_function(fn, cases, name="percentile", atol=0, rtol=0, mistakes={
        "the latencies are not sorted before taking the rank": _unsorted,
        "interpolating between two samples (torch.quantile); the nearest rank is always a "
        "latency some request really had": _interpolated,
        "off by one: rank ceil(q/100 * n) is 1-based, index it with - 1": _off_by_one,
        "the mean is not a percentile: one slow request in a hundred hides in it": _mean,
    })


# --- Exercise 26.3: predict, then measure: Little's law -------------------------------------------


def _little(concurrency, requests_per_s):
    return concurrency / requests_per_s


def check_little(fn) -> None:
    """``fn(concurrency, requests_per_s) -> seconds``: the mean latency a closed loop of
    ``concurrency`` clients must see at that throughput (Little's law, L = lambda W)."""
    cases = [(1, 10.0), (4, 10.0), (16, 32.0), (8, 2.5)]
    as_tensor = lambda f: lambda *a: torch.tensor(float(f(*a)))  # noqa: E731
    check_function(as_tensor(fn), [(c, torch.tensor(_little(*c))) for c in cases],
                   name="predicted_latency", mistakes={
                       "the ratio is upside down: more clients at the same throughput must mean "
                       "a longer wait, not a shorter one": as_tensor(lambda c, x: x / c),
                       "1 / throughput is the time between two answers, not the time one request "
                       "waits: the concurrency requests share the server": as_tensor(lambda c, x: 1 / x),
                   })


__all__ = ["check_little", "check_percentile", "check_stream_text"]
