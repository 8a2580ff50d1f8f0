"""Chapter 11's few-shot driver: the episodes and their encoding, the one-pass scoring against real
greedy decoding, the ideal learner on hand cases, seeded training, and exercise 11.5's check."""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib import data_path
from roadmap_lib.chapters.ch11_prompting_distillation import exercises as ex
from roadmap_lib.chapters.ch11_prompting_distillation import fewshot as fs
from roadmap_lib.exercises import ExerciseError
from roadmap_lib.generation import greedy


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(fs.FAMILIES), st.integers(0, 10**6))
def test_every_mapping_is_a_word_of_distinct_letters(family, seed):
    rng = random.Random(seed)
    mapping, ex_ = fs.episode(rng, 3, family)
    for x, y in ex_:
        assert len(y) == fs.WORD and len(set(y)) == fs.WORD and set(y) <= set(fs.LETTERS)
        assert y == fs.apply(mapping, x)


def test_families_by_hand():
    assert fs.apply({"family": "reverse"}, "bdae") == "eadb"
    assert fs.apply({"family": "sort"}, "bdae") == "abde"
    assert fs.apply({"family": "shift"}, "bdaf") == "ceba"
    assert fs.apply({"family": "substitute", "perm": "bcdefa"}, "bdaf") == "ceba"
    with pytest.raises(ValueError, match="family"):
        fs.make_mapping("copy", random.Random(0))


def test_encoding_targets_only_the_outputs_and_fits_the_context():
    ex_ = [("bdae", "eadb"), ("cfab", "bafc")]
    x, y = fs.encode_episodes([ex_])
    v = fs.vocab()
    assert v.decode(x[0, :19].tolist()) == "bdae>eadb;cfab>bafc"
    assert "".join(v.itos[t] for t in y[0].tolist() if t != -100) == "eadb;bafc;"
    x, y = fs.batches()("train", torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (fs.BATCH, fs.CONTEXT)
    with pytest.raises(ValueError, match="episodes"):
        fs.encode_episodes([ex_ * 4])


def test_one_pass_scoring_equals_greedy_decoding():
    """On the shipped model, whose answers are a mix of right and wrong, so both outcomes are compared."""
    model = fs.load_model(data_path("."))
    tests = fs.test_set(16)
    v = fs.vocab()
    seen = set()
    for shots in (0, 2):
        prompts = [fs.format_prompt(t["demos"][:shots], t["query"]) for t in tests]
        fast = fs.answers_right(model, prompts, [t["answer"] for t in tests])
        for p, t, ok in zip(prompts, tests, fast):
            out = greedy(model, v.encode(p)[None], fs.WORD)
            assert (v.decode(out[0, len(p):].tolist()) == t["answer"]) == bool(ok)
            seen.add(bool(ok))
    assert seen == {True, False}
    with pytest.raises(ValueError, match="answers"):
        fs.answers_right(model, prompts, [])
    with pytest.raises(ValueError, match="shots"):
        fs.accuracy(model, tests, fs.MAX_SHOTS + 1)
    with pytest.raises(ValueError, match="labels"):
        fs.accuracy(model, tests, 1, "shuffled")


def test_ideal_learner_hand_cases():
    # zero shots: the learner bets on one of the three fixed functions (a tie, when their outputs
    # differ): right one time in three if the answer is one of them
    t = {"demos": [], "query": "abcd", "answer": "dcba"}
    assert fs.ideal_accuracy([t], 0) == pytest.approx(1 / 3)
    # one reverse example leaves reverse and the substitutions that agree with it
    t = {"demos": [("bdae", "eadb")], "query": "bdae", "answer": "eadb"}
    assert fs.ideal_accuracy([t], 1) == 1.0
    t = {"demos": [("bdae", "eadb"), ("cfab", "bafc")], "query": "fcda", "answer": "adcf"}
    assert fs.ideal_accuracy([t], 2) == 1.0


def test_random_and_mixed_labels_keep_the_inputs():
    tests = fs.test_set(10)
    for t in tests:
        assert [x for x, _ in t["random_demos"]] == [x for x, _ in t["demos"]]
    full, none = fs.mixed_labels(tests, 1.0), fs.mixed_labels(tests, 0.0)
    assert all(a["demos"][:fs.MIX_SHOTS] == t["demos"][:fs.MIX_SHOTS] for a, t in zip(full, tests))
    assert all(a["demos"] == t["random_demos"][:fs.MIX_SHOTS] for a, t in zip(none, tests))
    half = fs.mixed_labels(tests, 0.5)
    assert all(sum(d in t["demos"] for d in a["demos"]) >= 2 for a, t in zip(half, tests))


@pytest.mark.slow
def test_training_is_seeded_and_the_checkpoint_round_trips(tmp_path):
    """Two 2-step trainings and a save/load (a few seconds alone, more on a busy machine)."""
    a, _ = fs.train_model(4, steps=2)
    b, _ = fs.train_model(4, steps=2)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    fs.save({"task": "t", "kept_model_seed": 0, "runs": []}, a, tmp_path)
    loaded = fs.load_model(tmp_path)
    for p, q in zip(a.parameters(), loaded.parameters()):
        assert torch.equal(p, q)


def test_family_check_accepts_a_right_answer_and_names_each_mistake():
    def right(demos):  # a student's version, written independently of the reference
        fixed = {"reverse": lambda w: w[::-1], "sort": lambda w: "".join(sorted(w)),
                 "shift": lambda w: "".join(chr((ord(c) - 97 + 1) % 6 + 97) for c in w)}
        out = [name for name, f in fixed.items() if all(f(x) == y for x, y in demos)]
        pairs = {(a, b) for x, y in demos for a, b in zip(x, y)}
        if len({a for a, _ in pairs}) == len(pairs) == len({b for _, b in pairs}):
            out.append("substitute")
        return out

    ex.check_families_consistent(right)
    for description, wrong in ex.FAMILY_MISTAKES.items():
        with pytest.raises(ExerciseError, match="likely mistake") as err:
            ex.check_families_consistent(wrong)
        assert description[:30] in str(err.value)
