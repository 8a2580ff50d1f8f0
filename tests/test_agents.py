"""roadmap_lib.agents: the tool loop and best-of-n, driven by scripted fake models."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib import agents


def scripted(chunks):
    """A fake model that returns the next chunk on every call and records what it saw."""
    seen, it = [], iter(chunks)

    def generate(text):
        seen.append(text)
        return next(it, "")

    return generate, seen


def test_tool_loop_fills_each_call_and_stops_on_stop():
    generate, seen = scripted(["CALC(2+3)=", " so CALC(5*4)=", " done."])

    def tool(text):  # a two-operation calculator for "CALC(a+b)=" and "CALC(a*b)="
        call = text[text.rindex("CALC(") + 5:-2]
        op = "+" if "+" in call else "*"
        a, b = (int(x) for x in call.split(op))
        return str(a + b if op == "+" else a * b)

    tr = agents.tool_loop(generate, "Q:", tool, call_marker="=", stop=".")
    assert tr.text == "Q:CALC(2+3)=5 so CALC(5*4)=20 done."
    assert tr.completion == tr.text[2:] and tr.finished
    assert tr.calls == [("Q:CALC(2+3)=", "5"), ("Q:CALC(2+3)=5 so CALC(5*4)=", "20")]
    assert seen == ["Q:", "Q:CALC(2+3)=5", "Q:CALC(2+3)=5 so CALC(5*4)=20"]


def test_tool_loop_ends_unfinished_on_silence_a_cut_or_too_many_calls():
    g, _ = scripted(["a="])
    tr = agents.tool_loop(g, "", lambda t: "1", call_marker="=", stop=".")
    assert tr.text == "a=1" and not tr.finished  # the model wrote nothing after the call
    g, _ = scripted(["abc"])
    tr = agents.tool_loop(g, "", lambda t: "1", call_marker="=", stop=".")
    assert tr.text == "abc" and not tr.finished and tr.calls == []  # ran out of room mid-step
    g, _ = scripted(["a=", "b=", "c="])
    tr = agents.tool_loop(g, "", lambda t: "1", call_marker="=", stop=".", max_calls=1)
    assert tr.text == "a=1b=" and len(tr.calls) == 1 and not tr.finished


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=6))
def test_with_a_perfect_tool_the_model_only_needs_the_operands(xs):
    """A 'model' that writes each operand and the marker, and a running-sum tool: the final
    text holds every prefix sum, whatever the numbers."""
    generate, _ = scripted([f"+{x}=" for x in xs] + ["."])

    def tool(text):
        return str(sum(int(p.split("=")[0]) for p in text.split("+")[1:]))

    tr = agents.tool_loop(generate, "", tool, call_marker="=", stop=".")
    assert [r for _, r in tr.calls] == [str(sum(xs[:i + 1])) for i in range(len(xs))]
    assert tr.finished


def test_best_of_n_takes_the_highest_score_and_the_first_on_ties():
    assert agents.best_of_n(["a", "bbb", "cc"], len) == "bbb"
    assert agents.best_of_n(["x1", "y0", "z1"], lambda s: int(s[1])) == "x1"
    assert agents.best_of_n(["only"], lambda s: 0.0) == "only"


def test_bad_inputs_name_the_argument():
    g, _ = scripted([])
    with pytest.raises(ValueError, match="call_marker"):
        agents.tool_loop(g, "", str, call_marker="", stop=".")
    with pytest.raises(ValueError, match="stop"):
        agents.tool_loop(g, "", str, call_marker=".", stop=".")
    with pytest.raises(ValueError, match="max_calls"):
        agents.tool_loop(g, "", str, call_marker="=", stop=".", max_calls=-1)
    with pytest.raises(TypeError, match="generate"):
        agents.tool_loop(lambda t: None, "", str, call_marker="=", stop=".")
    with pytest.raises(TypeError, match="tool"):
        agents.tool_loop(lambda t: "=", "", lambda t: 3, call_marker="=", stop=".")
    with pytest.raises(ValueError, match="candidates"):
        agents.best_of_n([], len)
