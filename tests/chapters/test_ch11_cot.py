"""Chapter 11's chain-of-thought driver: the data, the calculator tool, voting and verifying on
hand-made chains, seeded training, the figures and exercise 11.4's check."""

import random

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib import agents, reasoning
from roadmap_lib.chapters.ch11_prompting_distillation import cot, plots
from roadmap_lib.chapters.ch11_prompting_distillation import exercises as ex
from roadmap_lib.exercises import ExerciseError


def test_pairs_fit_the_context_and_are_seeded():
    a = cot.pairs(random.Random(0), 40, cot=True)
    assert a == cot.pairs(random.Random(0), 40, cot=True)
    assert max(len(p + c) for p, c in a) <= cot.CONTEXT + 1
    assert {len(p) // 2 for p, _ in a} == set(cot.N_DIGITS)
    longest = reasoning.tagged_prompt([1] * 6) + reasoning.tagged_completion([1] * 6, True, 2)
    assert len(longest) - 1 <= cot.CONTEXT
    x, y = cot.batches(True)("train", torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (cot.BATCH, cot.CONTEXT)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=2, max_size=6))
def test_a_model_that_writes_only_names_and_bits_gets_the_true_chain_from_the_calculator(bits):
    """A scripted model writes each step's name and bit and ':' (and the answer at the end); the
    loop's calculator fills every parity, and the text is the true scratchpad."""
    truth = reasoning.tagged_completion(bits, True, 2)
    chunks = [f"{t}{b}:" for t, b in zip(reasoning.TAGS, bits)]
    chunks = [chunks[0]] + ["," + c for c in chunks[1:]] + [truth[truth.index("#"):]]
    it = iter(chunks)
    tr = agents.tool_loop(lambda text: next(it, ""), reasoning.tagged_prompt(bits), cot.calculator,
                          call_marker=":", stop=".")
    assert tr.completion == truth and tr.finished and len(tr.calls) == len(bits)


def test_calculator_hand_cases():
    assert cot.calculator("a1b1c0d1=a1:") == "1"
    assert cot.calculator("a1b1c0d1=a1:1,b1:") == "0"
    assert cot.calculator("a1b1c0d1=a1:1,b1:0,c0:") == "0"
    assert cot.calculator("a1b1=a1:1,bx:") == "?"


def test_vote_and_verify_on_hand_made_chains():
    tests = {2: [[1, 1], [1, 0]]}  # parities 0 and 1
    chains = {2: [["a1:1,b1:0#0.", "a1:1,b0:1#1.", "a1:1,b0:1#1."],   # vote says 1, verifier keeps the first
                  ["a1:1,b0:0#0.", "junk", "a1:1,b0:1#1."]]}          # first breaks the arithmetic
    got = cot.vote_and_verify(chains, tests, ks=(1, 3))
    assert got["vote"][2] == {1: 0.5, 3: 0.0}
    assert got["verifier"][2] == {1: 0.5, 3: 1.0}


def test_merge_concatenates_seeds_in_order():
    recs = [{"task": "t", "runs": [{"seed": s, "cot": c} for c in (False, True)]} for s in (0, 1)]
    m = cot.merge(recs)
    assert [r["seed"] for r in m["runs"]] == [0, 0, 1, 1] and m["kept_model_seed"] == 0


@pytest.mark.slow
def test_training_is_seeded_and_the_checkpoint_round_trips(tmp_path):
    """Two 2-step trainings (a few seconds alone, far more on a busy machine)."""
    a, _ = cot.train_model(True, 3, steps=2)
    b, _ = cot.train_model(True, 3, steps=2)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    cot.save({"task": "t", "kept_model_seed": 3, "runs": []}, a, tmp_path)
    loaded = cot.load_model(tmp_path)
    for p, q in zip(a.parameters(), loaded.parameters()):
        assert torch.equal(p, q)


def test_complete_rejects_mixed_lengths_and_greedy_samples():
    m = cot.new_model(0).eval()
    with pytest.raises(ValueError, match="problems"):
        cot.complete(m, [[1, 0], [1, 0, 1]])
    with pytest.raises(ValueError, match="samples"):
        cot.complete(m, [[1, 0]], samples=2)


def test_plots_draw():
    ax = plots.plot_cot_accuracy([2, 3], {"direct": [[1.0, 0.5], [0.9, 0.5]]}, chance=0.5)
    assert len(ax.lines) == 2
    ax = plots.plot_samples_curve([1, 3], {"vote": [[0.5, 0.6], [0.4, 0.7]]}, baseline=0.5)
    assert len(ax.lines) == 2
    plt.close("all")


def test_vote_check_accepts_a_right_answer_and_names_each_mistake():
    def right(a):
        out = []
        for r in a.tolist():
            votes = [x for x in r if x != -1]
            out.append(max(votes, key=lambda x: (votes.count(x), -votes.index(x))) if votes else -1)
        return torch.tensor(out)

    ex.check_majority_vote(right)
    for description, wrong in ex.VOTE_MISTAKES.items():
        with pytest.raises(ExerciseError, match="likely mistake") as err:
            ex.check_majority_vote(wrong)
        assert description[:30] in str(err.value)
    with pytest.raises(ExerciseError, match="likely mistake"):  # the student's one-liner
        ex.check_majority_vote(lambda a: torch.mode(a, dim=1).values)
