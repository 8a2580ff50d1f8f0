"""Chapter 21's benchmark, perturbations, judge, reasoning grader, contamination pieces and the
shipped results (the artifact's verify re-scores seed 0; see tests/test_artifacts.py)."""

import copy
import random

import pytest
import torch

from roadmap_lib.chapters.ch21_evaluation import benchmark as B
from roadmap_lib.chapters.ch21_evaluation import experiments as E
from roadmap_lib.chapters.ch21_evaluation import reasoning as R
from roadmap_lib.evaluation import MCItem
from roadmap_lib.models.gpt import GPT, GPTConfig
from roadmap_lib.zoo import load_char_gpt


@pytest.fixture(scope="module")
def zoo():
    model, vocab, _ = load_char_gpt()
    return model, vocab


def test_items_are_seeded_and_well_formed():
    a, b = B.build_items("val", 20, 3), B.build_items("val", 20, 3)
    assert [(i.context, i.choices, i.gold) for i in a] == [(i.context, i.choices, i.gold) for i in b]
    val = B.split_text("val")
    for it in a:
        assert len(it.context) == B.CONTEXT_CHARS and len(set(it.choices)) == B.N_CHOICES
        assert it.context + it.choices[it.gold] in val  # the real phrase really follows the context
    assert len({it.gold for it in B.build_items("val", 40, 0)}) == B.N_CHOICES
    # the splits are the zoo model's: together the whole text, val the last 10%
    assert len(val) == int(len(B.split_text("train") + val) * 0.1)
    with pytest.raises(ValueError, match="split: expected 'train' or 'val'"):
        B.split_text("test")


def test_perturbations():
    items = [MCItem("the quick brown fox", [" a", " b"], 0)]
    assert B.perturb(items, "truncate", 5)[0].context == "n fox"
    assert B.perturb(items, "upper", 1.0)[0].context == "THE QUICK BROWN FOX"
    typo = B.perturb(items, "typos", 1.0)[0].context
    assert sorted(typo) == sorted(items[0].context) and typo != items[0].context
    assert B.perturb(items, "typos", 0.0)[0].context == items[0].context
    assert B.add_typos("ab cd", 1.0, random.Random(0)) == "ba dc"
    with pytest.raises(ValueError, match="kind: expected"):
        B.perturb(items, "shuffle", 1.0)


@pytest.mark.slow
def test_scorer_on_zoo_model_beats_chance(zoo):
    model, vocab = zoo
    r = B.scorer(model, vocab)(B.build_items("val", 24, 5))
    assert r["acc_norm"].mean() > 0.5  # chance is 0.25; the full study measures about 0.8


def test_judge_orders_and_bias(zoo):
    model, vocab = zoo
    items = B.build_items("val", 8, 1)
    ab, ba = B.run_judge(model, vocab, items, "real")
    assert ab.shape == (8, 2) and ba.shape == (8, 2)
    # the first answer is read after the same context in both layouts: its score does not depend on
    # which answer comes second, so the real answer's score shown first equals ...
    triples = B.judge_pairs(items, "real")
    again = B.judge_scores(model, vocab, [(c, a, "zzz") for c, a, _ in triples])
    assert torch.allclose(again[:, 0], ab[:, 0])
    # a huge scripted bias for the first position: every verdict goes to the answer shown first
    stats = B.position_bias(ab, ba, bias=100.0)
    assert stats["shown_first_chosen"].mean() == 1.0 and stats["consistent"].mean() == 0.0
    assert B.verdicts(torch.tensor([[0.0, 1.0], [1.0, 0.0]])).tolist() == [1, 0]
    with pytest.raises(ValueError, match="kind: expected 'real' or 'tie'"):
        B.judge_pairs(items, "both")


@pytest.mark.slow
def test_leak_raises_the_leaked_items_likelihood():
    """Fine-tunes a tiny GPT for a few steps (several seconds on a busy CPU)."""
    torch.manual_seed(0)
    vocab_model = GPT(GPTConfig(vocab_size=138, context_length=64, d_model=32, n_layers=1, n_heads=2)).eval()
    _, vocab, _ = load_char_gpt()
    items = B.build_items("val", 3, 2)
    before = B.scorer(vocab_model, vocab)(items)["logliks"]
    after = B.scorer(B.leak(copy.deepcopy(vocab_model), vocab, items, epochs=3, seed=0), vocab)(items)["logliks"]
    gold = torch.tensor([it.gold for it in items])
    gain = torch.stack([a[g] - b[g] for a, b, g in zip(after, before, gold)])
    assert bool((gain > 0).all())


def test_item_text_drops_the_cut_word():
    it = MCItem("gram is a word", [" here", " there"], 1)
    assert E.item_text(it) == "is a word there"


def test_grade_trace_hand_cases():
    p = (3, 4, 5)
    good = "step 1: 3 + 4 = 7\nstep 2: 7 * 5 = 35\nanswer: 35"
    assert R.grade_trace(p, good) == {"answer_correct": True, "path_valid": True, "parsed": True}
    assert R.grade_trace(p, "step 1: 4 + 3 = 7\nstep 2: 5 * 7 = 35\nanswer: 35")["path_valid"]
    wrong_step = "step 1: 3 + 4 = 8\nstep 2: 8 * 5 = 35\nanswer: 35"  # two slips, right answer
    assert R.grade_trace(p, wrong_step) == {"answer_correct": True, "path_valid": False, "parsed": True}
    unjustified = "step 1: 4 * 5 = 20\nstep 2: 3 + 20 = 23\nanswer: 35"
    assert R.grade_trace(p, unjustified)["answer_correct"] and not R.grade_trace(p, unjustified)["path_valid"]
    assert R.grade_trace(p, "the answer is 35") == {"answer_correct": False, "path_valid": False, "parsed": False}
    assert not R.grade_trace(p, "step 1: 3 + 4 = 7\nstep 2: 7 * 5 = 35\nanswer: 36")["path_valid"]


def test_solvers_do_what_they_say():
    assert R.grade_solver(R.careful, 50, 0) == {"answer_accuracy": 1.0, "path_accuracy": 1.0,
                                                "right_answer_wrong_path": 0.0}
    slip = R.grade_solver(R.slipper, 400, 0)
    assert slip["answer_accuracy"] == pytest.approx(0.8 * 0.8, abs=0.06) and slip["right_answer_wrong_path"] < 0.02
    mem = R.grade_solver(R.memoriser, 400, 0)
    assert mem["answer_accuracy"] > 0.85 and mem["path_accuracy"] == pytest.approx(0.6, abs=0.07)


def test_shipped_results_are_consistent():
    from roadmap_lib.chapters.ch21_evaluation.artifacts import results
    info = results()
    assert info["seeds"] == list(E.SEEDS) and info["n_items"] == E.N_ITEMS
    for name, per_seed in info["models"].items():
        assert len(E.pooled(per_seed, "acc")) == len(E.SEEDS) * E.N_ITEMS, name
    # contamination records: training-split items overlap the training text, validation items do not
    # (a few validation items share a common phrase with the training text)
    for key in info["overlap"]:
        assert sum(v > 0 for v in info["overlap"][key]["train"]) >= 0.98 * E.N_ITEMS
        assert sum(v > 0 for v in info["overlap"][key]["val"]) <= 0.05 * E.N_ITEMS
