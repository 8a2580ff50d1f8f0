"""roadmap_lib.agents.run_agent: every way an episode can end, driven by scripted fake models."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib import agents
from roadmap_lib.agents import Call, Final


class Script:
    """A fake model: each call returns the next of ``chunks`` ("" once they run out); ``seen``
    records every text it was given."""

    def __init__(self, chunks):
        self.chunks, self.seen = list(chunks), []

    def __call__(self, text):
        self.seen.append(text)
        return self.chunks.pop(0) if self.chunks else ""


def scripted(chunks):
    model = Script(chunks)
    return model, model.seen


def parse(output, text):
    """``CALC(expr)`` or ``LOOK(key)`` -> a call; ``ANSWER(x)`` -> final; anything else -> None."""
    output = output.strip()
    for name in ("CALC", "LOOK", "SHELL", "SLOW"):
        if output.startswith(name + "(") and output.endswith(")"):
            return Call(name.lower(), output[len(name) + 1:-1])
    if output.startswith("ANSWER(") and output.endswith(")"):
        return Final(output[7:-1])
    return None


DB = {"apple": "3", "pear": "5"}


def calc(expr):
    a, b = expr.split("+")
    return str(int(a) + int(b))


TOOLS = {"calc": calc, "look": DB.__getitem__, "slow": lambda arg: time.sleep(0.5) or "late"}


def test_an_episode_that_looks_up_computes_and_answers():
    generate, seen = scripted(["LOOK(apple)", " LOOK(pear)", " CALC(3+5)", " ANSWER(8)"])
    ep = agents.run_agent(generate, "Q: apples+pears? ", TOOLS, parse, max_steps=8)
    assert (ep.status, ep.answer, ep.detail) == ("answered", "8", "")
    assert ep.text == "Q: apples+pears? LOOK(apple)3 LOOK(pear)5 CALC(3+5)8 ANSWER(8)"
    assert [s.observation for s in ep.steps] == ["3", "5", "8", None]
    assert ep.steps[2].action == Call("calc", "3+5") and ep.steps[3].action == Final("8")
    assert ep.model_calls == 4 and ep.tool_calls == 3
    assert seen[1] == "Q: apples+pears? LOOK(apple)3"  # the model sees each observation


@pytest.mark.parametrize("chunks, status, detail", [
    (["LOOK(apple)", "I think 8"], "malformed", ""),
    (["LOOK(apple)", ""], "silent", ""),
    (["SHELL(rm -rf /)"], "refused", "shell"),
    (["LOOK(banana)"], "tool error", "KeyError: 'banana'"),
    (["CALC(3+)"], "tool error", "ValueError: invalid literal for int() with base 10: ''"),
    (["LOOK(apple)"] * 10, "step budget", ""),
])
def test_each_failure_ends_the_episode_with_its_status(chunks, status, detail):
    generate, seen = scripted(chunks)
    ep = agents.run_agent(generate, "", TOOLS, parse, max_steps=3, timeout_s=None)
    assert (ep.status, ep.answer, ep.detail) == (status, None, detail)
    assert len(seen) == min(len(chunks), 3)  # the model is not called again after a failure


def test_a_refused_tool_never_runs():
    ran = []
    generate, _ = scripted(["SHELL(ls)"])
    ep = agents.run_agent(generate, "", {"calc": calc}, parse, max_steps=3)
    assert ep.status == "refused" and ep.detail == "shell" and ep.steps[0].observation is None
    generate, _ = scripted(["SHELL(ls)", "ANSWER(x)"])
    ep = agents.run_agent(generate, "", {"shell": lambda a: ran.append(a) or "ok"}, parse)
    assert ep.status == "answered" and ran == ["ls"]  # the same call runs once it is allowed


def test_a_slow_tool_times_out_and_a_fast_one_does_not():
    generate, _ = scripted(["SLOW(x)"])
    start = time.perf_counter()
    ep = agents.run_agent(generate, "", TOOLS, parse, timeout_s=0.05)
    assert ep.status == "timeout" and ep.detail == "slow" and time.perf_counter() - start < 0.4
    generate, _ = scripted(["SLOW(x)", "ANSWER(ok)"])
    ep = agents.run_agent(generate, "", TOOLS, parse, timeout_s=2.0)
    assert ep.status == "answered" and ep.steps[0].observation == "late"


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(0, 8))
def test_the_step_budget_counts_model_calls(max_steps, n_calls):
    """A model that makes ``n_calls`` calls then answers: answered iff it fits in the budget."""
    generate, seen = scripted(["CALC(1+1)"] * n_calls + ["ANSWER(2)"])
    ep = agents.run_agent(generate, "", TOOLS, parse, max_steps=max_steps, timeout_s=None)
    assert ep.status == ("answered" if n_calls + 1 <= max_steps else "step budget")
    assert ep.model_calls == len(seen) == min(n_calls + 1, max_steps)


def test_status_counts_and_the_vote_of_answered_runs():
    def ep(status, answer=None):
        return agents.Episode("", "", status=status, answer=answer)

    eps = [ep("step budget"), ep("answered", "1"), ep("malformed"), ep("answered", "0"), ep("answered", "0")]
    counts = agents.status_counts(eps)
    assert counts["answered"] == 3 and counts["step budget"] == 1 and counts["refused"] == 0
    assert list(counts) == list(agents.STATUSES)
    assert agents.majority_answer(eps) == "0"
    assert agents.majority_answer(eps[:4]) == "1"  # a tie goes to the first answer
    assert agents.majority_answer([ep("malformed"), ep("timeout")]) is None


def test_bad_inputs_name_the_argument():
    g, _ = scripted([])
    with pytest.raises(ValueError, match="max_steps"):
        agents.run_agent(g, "", TOOLS, parse, max_steps=0)
    with pytest.raises(ValueError, match="timeout_s"):
        agents.run_agent(g, "", TOOLS, parse, timeout_s=0)
    with pytest.raises(ValueError, match="tools"):
        agents.run_agent(g, "", ["calc"], parse)
    with pytest.raises(TypeError, match="prompt"):
        agents.run_agent(g, None, TOOLS, parse)
    with pytest.raises(TypeError, match="generate"):
        agents.run_agent(lambda t: 3, "", TOOLS, parse)
    with pytest.raises(TypeError, match="parse"):
        agents.run_agent(lambda t: "x", "", TOOLS, lambda o, t: "calc")
    with pytest.raises(TypeError, match="tools"):
        agents.run_agent(lambda t: "CALC(1)", "", {"calc": lambda a: 1}, parse)


def test_run_agents_batches_episodes_and_each_ends_as_it_would_alone():
    scripts = [["LOOK(apple)", " ANSWER(3)"], ["SHELL(x)"], ["CALC(1+1)"] * 5, ["LOOK(pear)", "?"]]
    tools = [TOOLS, TOOLS, TOOLS, {"look": DB.__getitem__}]
    alone = [agents.run_agent(scripted(s)[0], f"P{k}:", t, parse, max_steps=3) for k, (s, t) in enumerate(zip(scripts, tools))]
    its, batches = [iter(s) for s in scripts], []

    def generate(texts):  # one call per step for every live episode, in prompt order
        batches.append([t[:3] for t in texts])
        return [next(its[int(t[1])], "") for t in texts]

    together = agents.run_agents(generate, [f"P{k}:" for k in range(4)], tools, parse, max_steps=3)
    assert [(e.status, e.answer, e.text) for e in together] == [(e.status, e.answer, e.text) for e in alone]
    assert [e.status for e in together] == ["answered", "refused", "step budget", "malformed"]
    assert batches == [["P0:", "P1:", "P2:", "P3:"], ["P0:", "P2:", "P3:"], ["P2:"]]
    with pytest.raises(ValueError, match="tools"):
        agents.run_agents(generate, ["a", "b"], [TOOLS], parse)
    with pytest.raises(ValueError, match="prompts"):
        agents.run_agents(generate, "ab", TOOLS, parse)
    with pytest.raises(TypeError, match="generate"):
        agents.run_agents(lambda texts: ["x"], ["a", "b"], TOOLS, parse)
