"""Tree search over partial solutions (``reasoning.tree_search``) on toy proposers with a known
optimum, and the step verifier of partial chains (``reasoning.chain_prefix_is_consistent``)."""

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib import reasoning


def _toy(branching, depth, seed):
    """A tree of tuples of choices; each node's value is a seeded random number; leaves at ``depth``."""
    def val(state):
        return random.Random(hash((seed, state))).random() if state else 0.0

    def propose(states):
        return [[s + (i,) for i in range(branching)] for s in states]

    return propose, val, (lambda s: len(s) == depth)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(0, 10**6))
def test_a_beam_wider_than_the_tree_is_exhaustive(branching, depth, seed):
    propose, val, done = _toy(branching, depth, seed)
    got = reasoning.tree_search((), propose, val, done, beam_width=branching ** depth, max_depth=depth)
    leaves = [tuple(p) for p in itertools.product(range(branching), repeat=depth)]
    assert val(got.best) == max(val(leaf) for leaf in leaves)
    assert len(got.finished) == len(leaves)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 10**6))
def test_beam_width_one_is_greedy_on_the_value(branching, depth, seed):
    propose, val, done = _toy(branching, depth, seed)
    state = ()
    for _ in range(depth):
        state = max((state + (i,) for i in range(branching)), key=lambda s: (val(s), -s[-1]))
    got = reasoning.tree_search((), propose, val, done, beam_width=1, max_depth=depth)
    assert got.best == state and got.expansions == depth


def test_a_trap_that_greedy_falls_into_and_a_beam_of_two_avoids():
    # first step: "a" looks better (0.6) than "b" (0.5), but every leaf under "a" is worth 0.1 and
    # "bb" is worth 1.0: the known optimum.
    values = {"a": 0.6, "b": 0.5, "aa": 0.1, "ab": 0.1, "ba": 0.2, "bb": 1.0}

    def propose(states):
        return [[s + c for c in "ab"] for s in states]

    kw = {"value": values.get, "is_finished": lambda s: len(s) == 2, "max_depth": 2}
    assert reasoning.tree_search("", propose, beam_width=1, **kw).best == "aa"  # the first of two equal leaves
    wide = reasoning.tree_search("", propose, beam_width=2, **kw)
    assert wide.best == "bb" and wide.expansions == 1 + 2


def test_pruned_children_are_never_kept_and_an_empty_frontier_stops():
    def propose(states):
        return [[s + c for c in "xy"] for s in states]

    got = reasoning.tree_search("", propose, lambda s: None if "x" in s else len(s), lambda s: False,
                                beam_width=5, max_depth=4)
    assert all("x" not in s for f in got.frontiers for s in f) and got.best is None
    got = reasoning.tree_search("", propose, lambda s: None, lambda s: False, beam_width=5, max_depth=4)
    assert got.frontiers == [[]] and got.expansions == 1


def test_stop_at_first_and_dedupe():
    def propose(states):
        return [[s + "a", s + "a", s + "b"] for s in states]

    calls = []
    got = reasoning.tree_search("", propose, lambda s: calls.append(s) or 1.0, lambda s: s.endswith("b"),
                                beam_width=3, max_depth=3, stop_at_first=True)
    assert got.best == "b" and len(got.frontiers) == 1 and calls == ["a", "b"]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="beam_width"):
        reasoning.tree_search("", lambda s: [[]], len, bool, beam_width=0, max_depth=1)
    with pytest.raises(ValueError, match="max_depth"):
        reasoning.tree_search("", lambda s: [[]], len, bool, beam_width=1, max_depth=True)
    with pytest.raises(ValueError, match="propose"):
        reasoning.tree_search("", lambda s: [], len, bool, beam_width=1, max_depth=1)


def test_chain_prefix_is_consistent_hand_cases():
    ok = reasoning.chain_prefix_is_consistent
    assert ok("") and ok("a1:1,", 2) and ok("a1:1,b1:0,", 2) and ok("a1:1,b1:0#0.", 2)
    assert not ok("a1:1,b1:1,", 2)      # 1 + 1 = 0 mod 2
    assert not ok("a1:1,b1", 2)         # an unfinished step
    assert not ok("a1:1,b1:0#1.", 2)    # the answer is not the last sum
    assert ok("a3:3,b5:8,") and not ok("a3:3,b5:9,")
    with pytest.raises(TypeError, match="text"):
        ok(None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=2, max_size=8))
def test_every_prefix_of_a_true_chain_passes_and_a_wrong_sum_fails(bits):
    chain = reasoning.tagged_completion(bits, True, 2)
    steps = chain.partition("#")[0].split(",")
    for i in range(len(steps) + 1):
        assert reasoning.chain_prefix_is_consistent("".join(s + "," for s in steps[:i]), 2)
    assert reasoning.chain_prefix_is_consistent(chain, 2)
    broken = steps[0][:-1] + str(1 - int(steps[0][-1])) + ","
    assert not reasoning.chain_prefix_is_consistent(broken, 2)
