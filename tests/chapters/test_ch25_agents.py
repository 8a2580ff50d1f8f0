"""Chapter 25, section 4: the parity agent's parser and tools, token accounting, the curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from roadmap_lib import agents, reasoning
from roadmap_lib.agents import Call, Final
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import agent_study as A
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers.plots import plot_test_time


def test_parse_reads_the_three_actions_and_nothing_else():
    assert A.parse("a", "a1b0=a") == Call("lookup", "a")
    assert A.parse(",c", "a1b0c1=a1:1,b0:1,c") == Call("lookup", "c")
    assert A.parse(":", "a1b0=a1:") == Call("calc", "0+1")  # no running parity yet: start from 0
    assert A.parse(":", "a1b0=a1:1,b0:") == Call("calc", "1+0")  # the last one after a ':'
    assert A.parse(":", "a1b0=a1:1:") == Call("calc", "1+")  # ':' with no bit looked up: calc refuses it
    assert A.parse(":", "a1b0=a1:1,:") == Call("calc", "1+")
    assert A.parse("#1.", "a1b0=a1:1,b0:1#1.") == Final("1")
    for junk in ("1:", ",,a", "#1", "#11.", "ab", "="):
        assert A.parse(junk, "a1b0=" + junk) is None


def test_tools_look_up_bits_compute_parities_and_refuse_bad_arguments():
    tools = A.tools([1, 0, 1])
    assert [tools["lookup"](t) for t in "abc"] == ["1", "0", "1"]
    assert [tools["calc"](e) for e in ("0+0", "0+1", "1+0", "1+1")] == ["0", "1", "1", "0"]
    with pytest.raises(KeyError, match="no bit named 'd'"):
        tools["lookup"]("d")
    with pytest.raises(ValueError, match="two bits"):
        tools["calc"]("1+")


class Scripted:
    """A batched fake model: the next output of each prompt's script, keyed by the prompt."""

    def __init__(self, scripts):
        self.its = {p: iter(s) for p, s in scripts.items()}

    def __call__(self, texts):
        return [next(self.its[t[:t.index("=") + 1]], "") for t in texts]


def test_a_scripted_model_through_the_parity_agent_ends_each_way():
    problems = {"a1b1=": [1, 1], "a0b1=": [0, 1], "a1b0=": [1, 0], "a0b0=": [0, 0]}
    scripts = {"a1b1=": ["a", ":", ",b", ":", "#0."],  # right
               "a0b1=": ["a", ":", ",c"],  # a bit the problem does not have
               "a1b0=": ["a", ":", ":"],  # a calculation without a looked-up bit
               "a0b0=": ["a", "0:"]}  # not an action
    eps = agents.run_agents(Scripted(scripts), list(problems), [A.tools(b) for b in problems.values()], A.parse)
    assert [A.failure_kind(e) for e in eps] == ["answered", "lookup: no such bit", "calc: missing operand",
                                                 "malformed"]
    assert eps[0].text == "a1b1=a1:1,b1:0#0." and eps[0].answer == "0"
    # tokens: each call re-reads the text so far, then writes its output
    assert A.episode_tokens(eps[0]) == (5 + 1) + (7 + 1) + (9 + 2) + (12 + 1) + (14 + 3)
    assert A.episode_tokens(eps[3]) == (5 + 1) + (7 + 2)


def test_the_shipped_model_solves_a_problem_greedily_and_batches_change_nothing():
    model = A.load_model()
    problems = [[1, 0, 1, 1], [0, 1, 1, 0, 1, 1]]
    eps = A.run_episodes(model, problems)
    for ep, p in zip(eps, problems):
        assert ep.status == "answered" and int(ep.answer) == reasoning.answer(p, 2)
        assert ep.text == reasoning.tagged_prompt(p) + reasoning.tagged_completion(p, True, 2)
        assert ep.model_calls == 2 * len(p) + 1
    alone = A.run_episodes(model, problems[1:])[0]  # greedy: the batch does not matter
    assert alone.text == eps[1].text
    texts, tokens = A.chains(model, problems)
    assert texts[0] == [reasoning.tagged_completion(problems[0], True, 2)]
    assert tokens[0] == [len(reasoning.tagged_prompt(problems[0])) + len(texts[0][0])]
    with pytest.raises(ValueError, match="n: greedy"):
        A.chains(model, problems, n=2)


def test_sampled_runs_are_reproducible_batch_by_batch():
    model = A.load_model()
    problems = A.all_problems((3,))
    a = [e.text for e in A.run_episodes(model, problems, 1.5, A.sample_seed(0, 1))]
    b = [e.text for e in A.run_episodes(model, problems, 1.5, A.sample_seed(0, 1))]
    c = [e.text for e in A.run_episodes(model, problems, 1.5, A.sample_seed(0, 2))]
    assert a == b and a != c


def _record():
    """Two problems (truth 1, 0), one seed, two samples, made by hand."""
    return {"truth": [1, 0],
            "greedy": {"answer": [1, 1], "tokens": [10, 20]},
            "greedy agent": {"answer": [1, 0], "tokens": [50, 70], "status": ["answered"] * 2, "calls": [5, 7]},
            "runs": [{"chains": {"answer": [[0, 1], [None, 0]], "consistent": [[False, True], [False, True]],
                                 "tokens": [[10, 12], [20, 22]]},
                      "agent": {"answer": [[None, 1], [0, 1]], "status": [["malformed", "answered"],
                                                                         ["answered", "answered"]],
                                "tokens": [[30, 50], [70, 70]], "calls": [[2, 5], [7, 7]]}}]}


def test_curves_points_and_the_status_table_by_hand():
    r = _record()
    assert A.point(r, "greedy") == (15.0, 0.5) and A.point(r, "greedy agent") == (60.0, 1.0)
    assert A.curve(r, "vote", 0, (1, 2)) == ([15.0, 32.0], [0.0, 0.5])  # tie 0-1 goes to the first
    assert A.curve(r, "verifier", 0, (1, 2)) == ([15.0, 32.0], [0.0, 1.0])
    assert A.curve(r, "agent", 0, (1, 2)) == ([50.0, 110.0], [0.5, 1.0])  # failed runs do not vote
    assert A.status_table(r) == {"malformed": [1], "answered": [3]}
    assert A.all_problems((2, 3))[:5] == [[0, 0], [0, 1], [1, 0], [1, 1], [0, 0, 0]]
    assert len(A.all_problems()) == 124


def test_plot_test_time_returns_axes():
    r = _record()
    ax = plot_test_time({"vote": [A.curve(r, "vote", 0, (1, 2))] * 2}, {"greedy": A.point(r, "greedy")})
    assert ax.get_xscale() == "log" and len(ax.get_lines()) == 2
    torch.manual_seed(0)


def test_the_shipped_record_is_complete():
    from roadmap_lib.chapters.ch25_multilingual_economics_frontiers.artifacts import test_time_results

    r = test_time_results()
    assert len(r["truth"]) == 124 and [run["seed"] for run in r["runs"]] == list(A.SEEDS)
    for run in r["runs"]:
        for part in ("chains", "agent"):
            assert all(len(v) == 124 and all(len(x) == max(A.NS) for x in v) for v in run[part].values())
        assert {s for st in run["agent"]["status"] for s in st} <= {
            "answered", "malformed", "lookup: no such bit", "calc: missing operand", *agents.STATUSES}
