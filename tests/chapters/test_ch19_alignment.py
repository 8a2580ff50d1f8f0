"""Chapter 19's task, experiment drivers, artifact files and plots."""

import pytest
import torch

from roadmap_lib import DATA_DIR
from roadmap_lib.chapters.ch19_alignment import artifacts
from roadmap_lib.chapters.ch19_alignment.experiments import (
    METHODS,
    Pairs,
    Setup,
    evaluate,
    make_pairs,
    offline_loss,
    subset,
    summary,
    train_offline,
    train_online,
    train_reward_model,
    weak_reward_model,
)
from roadmap_lib.chapters.ch19_alignment.plots import (
    curve_stats,
    dpo_family_curves,
    plot_kl_vs_reward,
    table_markdown,
)
from roadmap_lib.chapters.ch19_alignment.task import (
    COMPLETION_LEN,
    PROMPT_LEN,
    corpus,
    prompts,
    real_word_fraction,
    true_reward_fn,
    word_vocabulary,
)
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.zoo import load_char_gpt


@pytest.fixture(scope="module")
def zoo():
    model, vocab, _ = load_char_gpt()
    return model, vocab


@pytest.fixture(scope="module")
def tiny(zoo):
    """A 1-layer GPT on the zoo's vocabulary: the drivers' plumbing, fast."""
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=zoo[1].vocab_size, context_length=PROMPT_LEN + COMPLETION_LEN, d_model=16,
                    n_layers=1, n_heads=2)
    return GPT(cfg).eval(), zoo[1]


SMALL = Setup(pair_prompts=12, test_pair_prompts=8, eval_prompts=6, batch_pairs=4, offline_steps=2, online_steps=2,
              online_prompts=8, group_size=4)


def test_real_word_fraction_counts_letters_of_vocabulary_words():
    assert {"the", "hacker", "kludge"} <= word_vocabulary()
    assert "qzxv" not in word_vocabulary()
    assert real_word_fraction("the hacker") == 1.0
    assert real_word_fraction("The HACKER") == 1.0  # letters are matched case-insensitively
    assert real_word_fraction("qzxv the") == pytest.approx(3 / 7)
    assert real_word_fraction("the, 42") == pytest.approx(3 / 6)  # punctuation and digits count against
    assert real_word_fraction("") == 0.0 and real_word_fraction("  \n ") == 0.0
    with pytest.raises(TypeError, match="text: expected a str, got bytes"):
        real_word_fraction(b"the")


def test_prompts_are_seeded_windows_that_start_at_a_word(zoo):
    _, vocab = zoo
    p = prompts(vocab, 20, split="test", seed=3)
    assert p.shape == (20, PROMPT_LEN) and p.dtype == torch.long
    torch.testing.assert_close(p, prompts(vocab, 20, split="test", seed=3))
    text = corpus()
    cut = int(0.9 * len(text))
    for row in p:
        s = vocab.decode(row.tolist())
        assert s[0].isalpha() and text.find(s, cut - PROMPT_LEN) != -1  # from the held-out tenth
    with pytest.raises(ValueError, match="split: expected 'train' or 'test', got 'val'"):
        prompts(vocab, 2, split="val")
    with pytest.raises(ValueError, match="n: expected an int >= 1, got 0"):
        prompts(vocab, 0)


def test_true_reward_fn_scores_the_completion_only(zoo):
    _, vocab = zoo
    ids = torch.stack([vocab.encode("qzxv qzxv the hacker"), vocab.encode("the hackerqzxv, qzxv")])
    assert true_reward_fn(vocab)(ids, 10).tolist() == [1.0, 0.0]


def test_pairs_are_ordered_by_the_ground_truth(tiny):
    model, vocab = tiny
    pairs = make_pairs(model, vocab, 16, split="train", seed=0)
    assert 0 < len(pairs) <= 16 and pairs.chosen.shape == pairs.rejected.shape
    assert (pairs.chosen_reward > pairs.rejected_reward).all()
    reward = true_reward_fn(vocab)
    torch.testing.assert_close(reward(pairs.chosen, pairs.prompt_len), pairs.chosen_reward)
    torch.testing.assert_close(pairs.chosen[:, :PROMPT_LEN], pairs.rejected[:, :PROMPT_LEN])


@pytest.mark.parametrize("method", ["dpo", "ipo", "kto", "orpo"])
def test_offline_losses_are_finite_and_move_the_policy(tiny, method):
    model, vocab = tiny
    pairs = make_pairs(model, vocab, 12, split="train", seed=1)
    loss = offline_loss(method, model, model, pairs.chosen, pairs.rejected, pairs.prompt_len, 0.1)
    assert loss.ndim == 0 and torch.isfinite(loss)
    trained = train_offline(method, model, pairs, SMALL, seed=0)
    moved = sum((a - b).abs().sum().item() for a, b in zip(trained.parameters(), model.parameters()))
    assert moved > 0


def test_drivers_reject_unknown_methods(tiny):
    model, vocab = tiny
    pairs = Pairs(torch.zeros(2, 20, dtype=torch.long), torch.ones(2, 20, dtype=torch.long), 4, torch.ones(2),
                  torch.zeros(2))
    with pytest.raises(ValueError, match="method: expected one of 'dpo', 'ipo', 'kto', 'orpo', got 'simpo'"):
        offline_loss("simpo", model, model, pairs.chosen, pairs.rejected, 4, 0.1)
    with pytest.raises(ValueError, match="method: expected one of 'ppo', 'grpo', got 'dpo'"):
        train_online("dpo", model, lambda ids, p: torch.zeros(ids.shape[0]), vocab, SMALL, seed=0)


@pytest.mark.parametrize("method", ["ppo", "grpo"])
def test_online_drivers_run_and_evaluate(tiny, method):
    model, vocab = tiny
    pairs = make_pairs(model, vocab, 12, split="train", seed=1)
    rm, losses = train_reward_model(model, pairs, SMALL)
    calls = []
    policy = train_online(method, model, lambda ids, p: rm(ids).detach(), vocab, SMALL, seed=0,
                          callback=lambda step, pol: calls.append(step))
    assert calls == [0, 1] and len(losses) == 3
    ev = evaluate(policy, model, rm, vocab, SMALL)
    assert set(ev) == {"true_reward", "proxy_reward", "win_rate", "kl"} and 0 <= ev["win_rate"] <= 1
    same = evaluate(model, model, rm, vocab, SMALL)
    assert same["kl"] == 0.0


def test_subset_and_the_small_reward_model(tiny):
    model, vocab = tiny
    pairs = make_pairs(model, vocab, 12, split="train", seed=1)
    first = subset(pairs, 3)
    assert len(first) == 3 and torch.equal(first.chosen, pairs.chosen[:3])
    with pytest.raises(ValueError, match=f"n: expected an int in \\[1, {len(pairs)}\\], got 0"):
        subset(pairs, 0)
    rm = weak_reward_model(model, pairs, n_pairs=3, epochs=2)
    assert rm(first.chosen).shape == (3,)


def test_curve_stats_average_over_seeds():
    curves = [[{"step": 0, "kl": 0.0}, {"step": 10, "kl": 1.0}], [{"step": 0, "kl": 0.0}, {"step": 10, "kl": 3.0}]]
    steps, mean, std = curve_stats(curves, "kl")
    assert steps.tolist() == [0, 10] and mean.tolist() == [0.0, 2.0]
    assert std[1].item() == pytest.approx(2**0.5)


def test_dpo_family_curves_have_their_textbook_shapes():
    c = dpo_family_curves(0.1, torch.tensor([0.0, 5.0, 10.0]))  # 1/(2β) = 5, 1/β = 10
    assert c["sigmoid"][0].item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert c["sigmoid"][2] < c["sigmoid"][1] < c["sigmoid"][0]
    assert c["ipo"].tolist() == pytest.approx([25.0, 0.0, 25.0])  # a target margin, not "the more the better"
    assert c["hinge"].tolist() == pytest.approx([1.0, 0.5, 0.0])


shipped = pytest.mark.skipif(not (DATA_DIR / artifacts.RESULTS).is_file(),
                             reason="alignment-results not built (python -m roadmap_lib build alignment-results)")


@shipped
def test_shipped_results_hold_every_method_and_seed():
    results = artifacts.load_results()
    assert results["command"] == "python -m roadmap_lib build alignment-results"
    assert set(results["runs"]) == set(METHODS) and len(results["seeds"]) >= 3
    for runs in results["runs"].values():
        assert len(runs) == len(results["seeds"])
    for f in artifacts.ARTIFACTS[0].files:
        assert (DATA_DIR / f).stat().st_size <= 5 * 2**20
    s = summary(results)
    assert set(s["dpo"]) == {"true_reward", "proxy_reward", "win_rate", "kl"}
    assert "| DPO |" in table_markdown(results)
    ax = plot_kl_vs_reward(results)
    assert ax.get_xlabel().startswith("KL")


@shipped
def test_shipped_pairs_and_reward_model_load(zoo):
    train, test = artifacts.load_pairs()
    assert len(train) > 500 and len(test) > 100
    assert (train.chosen_reward > train.rejected_reward).all()
    rm = artifacts.load_reward_model(zoo[0])
    with torch.no_grad():
        assert rm(train.chosen[:4]).shape == (4,)


# Both artifacts' verify (re-measuring every recorded number) runs once, in
# tests/test_artifacts.py::test_artifact_remeasures_its_recorded_metrics; not repeated here.


overopt_shipped = pytest.mark.skipif(not (DATA_DIR / artifacts.OVEROPT).is_file(),
                                     reason="alignment-overoptimisation not built")


@overopt_shipped
def test_overoptimisation_record_is_complete():
    record = artifacts.load_results(name=artifacts.OVEROPT)
    assert len(record["curves"]) == len(record["setup"]["seeds"]) >= 3
    assert all(len(c) == record["setup"]["steps"] // record["setup"]["every"] + 1 for c in record["curves"])
