"""Exposure (Carlini et al. 2019) and candidate scoring."""

import math

import pytest
import torch

from roadmap_lib.memorization import candidate_log_likelihoods, exposure
from roadmap_lib.models.gpt import GPT, GPTConfig


def test_exposure_by_hand():
    scores = torch.tensor([0.1, 0.5, 0.3, 0.9])
    assert exposure(0.9, scores) == pytest.approx(2.0)  # rank 1 of 4
    assert exposure(0.5, scores) == pytest.approx(2 - 1)  # rank 2
    assert exposure(0.1, scores) == pytest.approx(0.0)  # rank 4
    assert exposure(0.5, torch.tensor([0.5, 0.5, 0.1, 0.2])) == pytest.approx(2.0)  # ties share the best rank


def test_candidate_log_likelihoods_match_a_full_forward():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, context_length=16, d_model=16, n_layers=1, n_heads=2)).eval()
    prefix = torch.tensor([1, 2, 3])
    cands = torch.randint(0, 11, (7, 4))
    got = candidate_log_likelihoods(model, prefix, cands, batch_size=3)
    for i in range(7):
        ids = torch.cat([prefix, cands[i]])
        with torch.no_grad():
            logp = model(ids[None, :-1])[0].double().log_softmax(-1)
        want = sum(float(logp[2 + j, cands[i, j]]) for j in range(4))
        assert float(got[i]) == pytest.approx(want, abs=1e-6)
    # probabilities of all continuations of length 1 sum to one
    every = candidate_log_likelihoods(model, prefix, torch.arange(11)[:, None])
    assert float(every.exp().sum()) == pytest.approx(1.0, abs=1e-6)
    assert math.isfinite(float(got.sum()))


@pytest.mark.parametrize("call, match", [
    (lambda: exposure(0.3, torch.tensor([0.1])), "candidate_scores"),
    (lambda: exposure(0.3, torch.tensor([0.1, 0.2])), "candidate_scores"),
    (lambda: candidate_log_likelihoods(None, torch.tensor([]), torch.zeros(2, 2, dtype=torch.long)), "prefix"),
    (lambda: candidate_log_likelihoods(None, torch.tensor([1]), torch.zeros(2, dtype=torch.long)), "candidates"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
