"""Loops around a language model, independent of any model: a tool loop, best-of-n, and an agent.

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

**A multi-step agent** (:func:`run_agent`): the loop reads each action the model writes, parses it
into a tool :class:`Call` or a :class:`Final` answer, runs allowed tools with a time limit, appends
the observation and repeats, within a step budget; every way an episode can end is a named status
(:data:`STATUSES`), so failures are counted, not guessed. ::

    ep = run_agent(generate, prompt, {"calc": calc, "lookup": lookup}, parse, max_steps=16)
    ep.status, ep.answer, ep.model_calls
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
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


# --- a multi-step agent: parse a call, check it is allowed, run it with a time limit, repeat ------


@dataclass(frozen=True)
class Call:
    """The model asked for ``tool`` with the argument string ``arg``."""

    tool: str
    arg: str


@dataclass(frozen=True)
class Final:
    """The model gave its final answer."""

    answer: str


@dataclass
class Step:
    """One turn of :func:`run_agent`: what the model wrote, how it was parsed (``None``: it could
    not be), and what the tool returned (``None`` when no tool ran)."""

    output: str
    action: Call | Final | None
    observation: str | None = None


#: How an episode of :func:`run_agent` can end. Only ``"answered"`` carries an answer.
STATUSES = ("answered", "malformed", "refused", "tool error", "timeout", "step budget", "silent")


@dataclass
class Episode:
    """What :func:`run_agent` did: the full ``text`` (prompt, model output, observations), its
    ``steps``, how it ended (``status``, one of :data:`STATUSES`), the ``answer`` when it ended
    with one, and ``detail``: the tool's error message, the refused tool's name, and so on."""

    prompt: str
    text: str
    steps: list[Step] = field(default_factory=list)
    status: str = "step budget"
    answer: str | None = None
    detail: str = ""

    @property
    def model_calls(self) -> int:
        return len(self.steps)

    @property
    def tool_calls(self) -> int:
        return sum(s.observation is not None for s in self.steps)


_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-tool")


def _run_with_timeout(fn: Callable[[str], str], arg: str, timeout_s: float | None):
    """``("ok", result)``, ``("error", message)`` or ``("timeout", "")``. The tool runs on a worker
    thread, reused from call to call. Python cannot stop a thread: a tool that hangs keeps its
    worker, which is abandoned and replaced by a fresh one, and the interpreter still waits for it
    at exit (for tools you do not trust, use a subprocess or a sandbox, which can be killed)."""
    global _pool
    try:
        if timeout_s is None:
            return "ok", fn(arg)
        future = _pool.submit(fn, arg)
        try:
            return "ok", future.result(timeout=timeout_s)
        except FuturesTimeout:
            _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-tool")
            return "timeout", ""
    except Exception as e:  # noqa: BLE001 - any failure of a tool is reported, not raised
        return "error", f"{type(e).__name__}: {e}"


def run_agent(generate: Callable[[str], str], prompt: str, tools: Mapping[str, Callable[[str], str]],
              parse: Callable[[str, str], Call | Final | None], *, max_steps: int = 16,
              timeout_s: float | None = 1.0) -> Episode:
    """Run a model as an agent until it answers, fails, or uses up ``max_steps`` model calls.

    Each step: ``generate(text)`` continues the text by one action; ``parse(output, text)`` (the
    new output, and the whole text that ends with it) turns it into a :class:`Call`, a
    :class:`Final`, or ``None`` when it is neither. A call runs only if its tool is in ``tools``
    (the allow-list: a name -> function from the argument string to an observation string), with
    at most ``timeout_s`` seconds (``None``: no limit, and no worker thread); its result is
    appended to the text and the loop goes on. The episode ends with the first of

    - ``"answered"``: the model wrote a :class:`Final` (the only status with an ``answer``);
    - ``"silent"``: the model wrote nothing; ``"malformed"``: ``parse`` returned ``None``;
    - ``"refused"``: a call to a tool outside ``tools`` (never run; ``detail`` names it);
    - ``"tool error"``: the tool raised (``detail`` holds the message); ``"timeout"``;
    - ``"step budget"``: ``max_steps`` model calls without any of the above.

    A tiny model cannot recover from an error message, so every failure ends the episode; a
    ReAct-style agent for a large model would append the error as an observation instead.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt: expected a str, got {prompt!r}")
    return run_agents(lambda texts: [generate(t) for t in texts], [prompt], tools, parse,
                      max_steps=max_steps, timeout_s=timeout_s)[0]


def run_agents(generate: Callable[[list[str]], list[str]], prompts: Sequence[str],
               tools: Mapping[str, Callable[[str], str]] | Sequence[Mapping[str, Callable[[str], str]]],
               parse: Callable[[str, str], Call | Final | None], *, max_steps: int = 16,
               timeout_s: float | None = 1.0) -> list[Episode]:
    """:func:`run_agent` for many prompts at once, in lockstep: ``generate(texts) -> outputs``
    continues every live episode's text in one batch (how a server batches agents), and an
    episode leaves the batch as soon as it ends. ``tools`` is one allow-list for all, or one per
    prompt. Each episode ends exactly as it would alone."""
    if not isinstance(prompts, Sequence) or isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompts: expected a list of str, got {prompts!r}")
    toolsets = [tools] * len(prompts) if isinstance(tools, Mapping) else list(tools)
    if len(toolsets) != len(prompts) or not all(
            isinstance(t, Mapping) and all(isinstance(k, str) and callable(f) for k, f in t.items()) for t in toolsets):
        raise ValueError(f"tools: expected a mapping from tool names to functions (or one per prompt), got {tools!r}")
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise ValueError(f"max_steps: expected an int >= 1, got {max_steps!r}")
    if timeout_s is not None and not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
        raise ValueError(f"timeout_s: expected a number of seconds > 0 or None, got {timeout_s!r}")
    episodes = [Episode(prompt=p, text=p) for p in prompts]
    live = list(range(len(episodes)))
    for _ in range(max_steps):
        if not live:
            break
        outs = generate([episodes[i].text for i in live])
        if not isinstance(outs, Sequence) or len(outs) != len(live):
            raise TypeError(f"generate: expected one output per text ({len(live)}), got {outs!r}")
        live = [i for i, out in zip(live, outs) if _step(episodes[i], out, toolsets[i], parse, timeout_s)]
    for i in live:
        episodes[i].status = "step budget"
    return episodes


def _step(ep: Episode, out: str, tools: Mapping, parse, timeout_s: float | None) -> bool:
    """Apply one model output to ``ep``; True while the episode goes on."""
    if not isinstance(out, str):
        raise TypeError(f"generate: expected it to return a str, got {type(out).__name__}")
    if not out:
        ep.status = "silent"
        return False
    ep.text += out
    action = parse(out, ep.text)
    if action is not None and not isinstance(action, (Call, Final)):
        raise TypeError(f"parse: expected it to return a Call, a Final or None, got {type(action).__name__}")
    ep.steps.append(Step(out, action))
    if action is None:
        ep.status = "malformed"
        return False
    if isinstance(action, Final):
        ep.status, ep.answer = "answered", action.answer
        return False
    if action.tool not in tools:
        ep.status, ep.detail = "refused", action.tool
        return False
    kind, result = _run_with_timeout(tools[action.tool], action.arg, timeout_s)
    if kind != "ok":
        ep.status, ep.detail = ("tool error", result) if kind == "error" else ("timeout", action.tool)
        return False
    if not isinstance(result, str):
        raise TypeError(f"tools[{action.tool!r}]: expected it to return a str, got {type(result).__name__}")
    ep.steps[-1].observation = result
    ep.text += result
    return True


def status_counts(episodes: Sequence[Episode]) -> dict[str, int]:
    """``{status: number of episodes}`` over every status in :data:`STATUSES` (zeros included)."""
    counts = dict.fromkeys(STATUSES, 0)
    for ep in episodes:
        counts[ep.status] += 1
    return counts


def majority_answer(episodes: Sequence[Episode]) -> str | None:
    """Self-consistency over agent runs: the most frequent answer among the episodes that ended
    ``"answered"`` (a tie goes to the one seen first); ``None`` when none did. Failed runs do not
    vote."""
    answers = [ep.answer for ep in episodes if ep.status == "answered"]
    if not answers:
        return None
    counts = {a: answers.count(a) for a in answers}
    return max(answers, key=lambda a: (counts[a], -answers.index(a)))


__all__ = ["STATUSES", "Call", "Episode", "Final", "Step", "Trace", "best_of_n", "majority_answer", "run_agent",
           "run_agents", "status_counts", "tool_loop"]
