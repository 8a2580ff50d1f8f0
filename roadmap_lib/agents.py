"""Two search loops around a language model, independent of any model: a tool loop and best-of-n.

**Tool loop** (ReAct-style, Yao et al., 2023; Toolformer, Schick et al., 2023): the model writes
text until it emits a *call marker*; the loop hands the text so far to a tool, appends the tool's
answer to the text, and lets the model continue. The model decides *what* to compute, the tool
computes it. ::

    trace = tool_loop(generate, "a3b5=", calculator, call_marker=":", stop=".")

``generate(text) -> str`` is any function that continues ``text`` and returns the continuation,
ending it at the first call marker or stop string it writes (or earlier when it runs out of room).

**Best-of-n with a verifier** (Cobbe et al., 2021): sample n candidates, score each with a
verifier, keep the best. :func:`best_of_n` is the selection; what it buys depends entirely on how
well the verifier's score tracks correctness.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Trace:
    """What a :func:`tool_loop` run wrote: ``text`` (prompt + model + tool output), the tool
    ``calls`` as ``(text the tool saw, what it returned)``, and whether the model wrote ``stop``."""

    prompt: str
    text: str
    calls: list[tuple[str, str]] = field(default_factory=list)
    finished: bool = False

    @property
    def completion(self) -> str:
        """Everything after the prompt."""
        return self.text[len(self.prompt):]


def tool_loop(generate: Callable[[str], str], prompt: str, tool: Callable[[str], str], *,
              call_marker: str, stop: str, max_calls: int = 16) -> Trace:
    """Alternate model and tool until the model writes ``stop`` (``finished=True``), writes nothing,
    or has made ``max_calls`` calls and would make another (``finished=False``)."""
    for name, value in (("prompt", prompt), ("call_marker", call_marker), ("stop", stop)):
        if not isinstance(value, str) or (name != "prompt" and not value):
            raise ValueError(f"{name}: expected a {'non-empty ' if name != 'prompt' else ''}str, got {value!r}")
    if call_marker == stop:
        raise ValueError(f"stop: expected a string different from call_marker, got {stop!r} for both")
    if not isinstance(max_calls, int) or max_calls < 0:
        raise ValueError(f"max_calls: expected an int >= 0, got {max_calls!r}")
    trace = Trace(prompt=prompt, text=prompt)
    while True:
        out = generate(trace.text)
        if not isinstance(out, str):
            raise TypeError(f"generate: expected it to return a str, got {type(out).__name__}")
        trace.text += out
        if out.endswith(stop) or not out:
            trace.finished = bool(out)
            return trace
        if not out.endswith(call_marker) or len(trace.calls) == max_calls:
            return trace
        result = tool(trace.text)
        if not isinstance(result, str):
            raise TypeError(f"tool: expected it to return a str, got {type(result).__name__}")
        trace.calls.append((trace.text, result))
        trace.text += result


def best_of_n(candidates: Sequence[T], score: Callable[[T], float]) -> T:
    """The candidate with the highest ``score``; a tie goes to the one first in ``candidates``."""
    if not candidates:
        raise ValueError("candidates: expected at least one candidate, got none")
    scores = [score(c) for c in candidates]
    return candidates[max(range(len(candidates)), key=lambda i: (scores[i], -i))]


__all__ = ["Trace", "best_of_n", "tool_loop"]
