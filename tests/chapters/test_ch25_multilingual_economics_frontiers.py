"""Chapter 25's drivers: parameter formulas vs transformers (meta device), the induction data and
model, the transfer study's pieces, the shipped artifacts' verify, and the figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import artifacts, costs, plots
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import induction as I
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import multilingual_study as S
from roadmap_lib.measure import count_parameters


@pytest.mark.slow
def test_parameter_formulas_match_transformers_on_meta():
    """Slow only because importing transformers takes seconds (meta tensors allocate nothing)."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        llama = LlamaForCausalLM(LlamaConfig(**costs.MODELS["Llama 2 7B"]["config"]))
        small_gqa = {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 3, "num_attention_heads": 8,
                         "num_key_value_heads": 2, "vocab_size": 1000}
        gqa = LlamaForCausalLM(LlamaConfig(**small_gqa))
        gpt = GPT2LMHeadModel(GPT2Config(n_embd=96, n_layer=3, n_head=4, n_positions=64, vocab_size=500))
    assert costs.published_params("Llama 2 7B") == count_parameters(llama) == 6_738_415_616
    assert costs.llama_params(**small_gqa) == count_parameters(gqa)
    costs.MODELS["_test"] = {"family": "gpt2", "config": {"n_embd": 96, "n_layer": 3, "n_head": 4, "n_positions": 64,
                                                             "vocab_size": 500}}
    try:
        assert costs.published_params("_test") == count_parameters(gpt)
    finally:
        del costs.MODELS["_test"]
    with pytest.raises(ValueError, match="name: expected one of"):
        costs.published_params("GPT-5")


def test_decode_throughput_is_positive():
    from roadmap_lib.models import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=11, context_length=32, d_model=16, n_layers=1, n_heads=2)).eval()
    assert costs.decode_throughput(model, 11, batch=2, new_tokens=4, prompt=2, repeats=1) > 0


def test_repeated_batch_and_patching_pair():
    ids, targets = I.repeated_batch(5, torch.Generator().manual_seed(0), half=4, vocab=9)
    assert ids.shape == targets.shape == (5, 8)
    assert torch.equal(ids[:, :4], ids[:, 4:])
    assert (targets[:, :3] == -100).all() and (targets[:, -1] == -100).all()
    assert torch.equal(targets[:, 3:7], ids[:, 4:8])
    clean, corrupt, query = I.patching_pair(6, source=2, seed=0, half=4, vocab=9)
    assert query == 5
    diff = (clean != corrupt).nonzero()[:, 1]
    assert diff.tolist() == [2] * 6
    with pytest.raises(ValueError, match="source: expected a position in \\[1, 4\\), got 4"):
        I.patching_pair(2, source=4, seed=0, half=4)


def test_lens_probs_by_hand():
    ids = torch.tensor([[0, 1, 2]])
    logits = torch.full((1, 1, 3, 3), -1e9)
    logits[0, 0, 0, 1] = 0  # position 0 predicts token 1 (right)
    logits[0, 0, 1, 0] = 0  # position 1 predicts token 0 (wrong: next is 2)
    assert I.lens_probs(logits, ids).tolist() == [[1.0, 0.0]]


def test_bags_are_token_frequencies():
    b = S.bags([[0, 0, 2], [1]], vocab=3)
    torch.testing.assert_close(b, torch.tensor([[2 / 3, 0, 1 / 3], [0, 1.0, 0]]))


def test_labelled_keeps_the_four_classes():
    rows = [{"source": "ext"}, {"source": "themes"}, {"source": "cmd"}]
    assert [r["label"] for r in S.labelled(rows)] == [S.CLASSES.index("ext"), S.CLASSES.index("cmd")]


def test_fit_and_score_learns_a_separable_toy_task():
    rows = [{"en": w, "fr": w, "label": lab} for w, lab in [("a", 0), ("b", 1), ("c", 2), ("d", 3)] * 5]
    langs = S.ALL
    try:
        S.ALL = ["en", "fr"]
        acc = S.fit_and_score(lambda t, lang: [ord(t) - 97], rows, rows, "en", vocab=4, seed=0)
    finally:
        S.ALL = langs
    assert acc == {"en": 1.0, "fr": 1.0}


# The shipped artifacts' verifies run once, in tests/test_artifacts.py (every registered artifact).


def test_transfer_results_are_complete():
    study = artifacts.transfer_results()
    assert study["seeds"] == [0, 1, 2]
    for setting in ("shared", "separate", "in-language"):
        assert len(study["accuracy"][setting]) == 3
        assert all(set(a) == set(S.ALL) for a in study["accuracy"][setting])


def test_plots_return_axes():
    study = {"languages": ["en", "fr"], "accuracy": {k: [{"en": 0.5, "fr": 0.4}] * 3 for k in
                                                      ("in-language", "shared", "separate")}}
    study["accuracy"]["majority"] = [0.3] * 3
    assert plots.plot_transfer(study) is not None
    assert plots.plot_premium({"a": {"en": 1.0, "fr": 2.0}}) is not None
    assert plots.plot_costs([{"name": "x", "cost": 3.0}]) is not None
    assert plots.plot_patching(torch.zeros(3, 8), 5, 2) is not None
    assert plots.plot_logit_lens(torch.rand(3, 7), 4) is not None
    axes = plots.plot_attention(torch.rand(2, 1, 2, 4, 4))
    assert len(axes) == 2
    matplotlib.pyplot.close("all")
