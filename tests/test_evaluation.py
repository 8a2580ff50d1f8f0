"""roadmap_lib.evaluation: the bootstrap against scipy, ECE against hand-derived bins,
log-likelihood multiple-choice scoring on a hand-written task with hand-computed scores, and the
n-gram contamination check."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from roadmap_lib.evaluation import (
    MCItem,
    bootstrap_ci,
    continuation_logliks,
    expected_calibration_error,
    multiple_choice_metrics,
    ngram_index,
    ngram_overlap,
    reliability_bins,
    score_choices,
    words,
)

# ---- bootstrap ------------------------------------------------------------------------------


def test_bootstrap_percentile_interval_agrees_with_scipy():
    g = torch.Generator().manual_seed(0)
    correct = (torch.rand(300, generator=g) < 0.7).double()
    ours = bootstrap_ci(lambda c: c.mean(), correct, n=4000, seed=1)
    theirs = stats.bootstrap((correct.numpy(),), np.mean, n_resamples=4000, method="percentile",
                             confidence_level=0.95, random_state=np.random.default_rng(1))
    assert ours.estimate == pytest.approx(float(correct.mean()))
    # two independent Monte Carlo estimates of the same quantiles: agree to about 1 point of accuracy
    assert abs(ours.low - theirs.confidence_interval.low) < 0.01
    assert abs(ours.high - theirs.confidence_interval.high) < 0.01
    # and the textbook normal interval p ± 1.96 sqrt(p(1-p)/n) is close for n = 300
    half = 1.96 * math.sqrt(ours.estimate * (1 - ours.estimate) / 300)
    assert abs((ours.high - ours.low) / 2 - half) < 0.006


def test_paired_bootstrap_uses_the_same_items():
    # b = a except one item: every paired resample differs by 0 or a multiple of 1/n, never negative
    a = torch.ones(50)
    b = a.clone()
    b[0] = 0
    gold = torch.ones(50)
    ci = bootstrap_ci(lambda x, y, g: (x == g).double().mean() - (y == g).double().mean(), a, b, gold, n=300)
    assert ci.estimate == pytest.approx(1 / 50) and float(ci.samples.min()) >= 0.0
    # lists resample too, and unpacking gives (estimate, low, high)
    est, lo, hi = bootstrap_ci(lambda xs: sum(xs) / len(xs), [1.0, 2.0, 3.0, 4.0], n=200, seed=3)
    assert est == 2.5 and 1.0 <= lo <= est <= hi <= 4.0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=20), st.integers(0, 100))
def test_bootstrap_properties(xs, seed):
    x = torch.tensor(xs, dtype=torch.float64)
    ci = bootstrap_ci(lambda v: v.mean(), x, n=50, seed=seed)
    assert float(x.min()) - 1e-9 <= ci.low <= ci.high <= float(x.max()) + 1e-9
    again = bootstrap_ci(lambda v: v.mean(), x, n=50, seed=seed)
    assert torch.equal(ci.samples, again.samples)  # seeded


def test_bootstrap_errors():
    with pytest.raises(ValueError, match="arrays: expected non-empty arrays of one length"):
        bootstrap_ci(lambda a, b: 0.0, [1, 2], [1])
    with pytest.raises(ValueError, match="n: expected an int >= 2"):
        bootstrap_ci(lambda a: 0.0, [1], n=1)
    with pytest.raises(ValueError, match="confidence: expected a number in"):
        bootstrap_ci(lambda a: 0.0, [1], confidence=95)


# ---- calibration ----------------------------------------------------------------------------


def test_ece_hand_derived():
    # 4 bins of width 0.25. Bin (0.5, 0.75]: conf 0.6, 0.7, right, wrong -> |0.5 - 0.65| = 0.15, weight 2/5
    # bin (0.75, 1]: conf 0.9, 0.8, 1.0, all right -> |1 - 0.9| = 0.1, weight 3/5
    conf = torch.tensor([0.6, 0.7, 0.9, 0.8, 1.0])
    ok = torch.tensor([1, 0, 1, 1, 1])
    assert expected_calibration_error(conf, ok, n_bins=4) == pytest.approx(0.4 * 0.15 + 0.6 * 0.1)
    _mean_conf, acc, count = reliability_bins(conf, ok, n_bins=4)
    assert count.tolist() == [0, 0, 2, 3] and math.isnan(acc[0])
    # a confidence on an edge goes to the lower bin: 0.5 is in (0.25, 0.5]
    assert reliability_bins(torch.tensor([0.5]), torch.tensor([1]), 4)[2].tolist() == [0, 1, 0, 0]
    # one bin: ECE = |accuracy - mean confidence|
    assert expected_calibration_error(conf, ok, n_bins=1) == pytest.approx(abs(0.8 - 0.8))
    assert expected_calibration_error(torch.tensor([0.0, 0.3]), torch.tensor([0, 1]), 10) == pytest.approx(0.35)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=40), st.integers(1, 15))
def test_ece_properties(rows, n_bins):
    conf = torch.tensor([c for c, _ in rows], dtype=torch.float64)
    ok = torch.tensor([b for _, b in rows])
    ece = expected_calibration_error(conf, ok, n_bins)
    assert 0.0 <= ece <= 1.0
    # binning can only hide miscalibration: ECE <= mean |correct - conf| (the one-item-per-bin limit)
    assert ece <= float((ok.double() - conf).abs().mean()) + 1e-12


def test_ece_errors():
    with pytest.raises(ValueError, match="confidence: expected probabilities in"):
        expected_calibration_error(torch.tensor([1.5]), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"correct: expected a tensor of shape \(2,\)"):
        expected_calibration_error(torch.tensor([0.5, 0.5]), torch.tensor([1]))
    with pytest.raises(TypeError, match="confidence: expected a 1-D float tensor"):
        expected_calibration_error(torch.tensor([1, 0]), torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="n_bins: expected an int >= 1"):
        expected_calibration_error(torch.tensor([0.5]), torch.tensor([1]), n_bins=0)


# ---- multiple choice --------------------------------------------------------------------------

VOCAB = "abc xyz"
# p(next | previous character) of a hand-made bigram "model": after any character, 'a' has
# probability 1/2, ' ' 1/4, and the other five 1/20 each.
PROBS = torch.tensor([0.5, 0.05, 0.05, 0.25, 0.05, 0.05, 0.05])


class Bigram(torch.nn.Module):
    def forward(self, ids):
        return PROBS.log().expand(*ids.shape, len(VOCAB)).clone()


def encode(text):
    return [VOCAB.index(c) for c in text]


TASK = json.loads("""[
  {"context": "abc", "choices": [" a", " xyz", " aa"], "gold": 1},
  {"context": "x", "choices": ["a", "bb"], "gold": 0},
  {"context": "zz", "choices": [" b", " aaaa"], "gold": 1}
]""")


def test_multiple_choice_hand_computed():
    items = [MCItem(**row) for row in TASK]
    ll = score_choices(Bigram(), encode, items, max_length=8)
    L = {c: math.log(p) for c, p in zip(VOCAB, PROBS.tolist())}
    # item 1: " a" = ln(1/4) + ln(1/2); " xyz" = ln(1/4) + 3 ln(1/20); " aa" = ln(1/4) + 2 ln(1/2)
    expected = [[L[" "] + L["a"], L[" "] + 3 * L["x"], L[" "] + 2 * L["a"]],
                [L["a"], 2 * L["b"]],
                [L[" "] + L["b"], L[" "] + 4 * L["a"]]]
    for got, want in zip(ll, expected):
        assert torch.allclose(got, torch.tensor(want, dtype=torch.float64))
    m = multiple_choice_metrics(ll, items)
    # acc picks " a" (wrong), "a" (right), " b" = -4.38 vs " aaaa" = -4.16 -> " aaaa" (right)
    assert m["acc"].tolist() == [0.0, 1.0, 1.0]
    # acc_norm per byte: " a" -1.04, " xyz" -2.71, " aa" -0.92 -> " aa" (wrong); "a" -0.69 vs "bb" -3.0 (right);
    # " b" -2.19 vs " aaaa" -0.83 (right)
    assert m["acc_norm"].tolist() == [0.0, 1.0, 1.0]


def test_acc_norm_differs_from_acc_on_length():
    # two choices of different length: the short one wins acc, the long one wins per byte
    item = MCItem("a", [" ", " aaaaaa"], gold=1)
    ll = [torch.tensor([math.log(0.25), math.log(0.25) + 6 * math.log(0.5)], dtype=torch.float64)]
    m = multiple_choice_metrics(ll, [item])
    assert m["acc"].item() == 0.0 and m["acc_norm"].item() == 1.0


def test_continuation_logliks_truncates_on_the_left_like_the_harness():
    # with a real model: our score of a long context equals scoring the last max_length + 1 tokens
    torch.manual_seed(0)
    from roadmap_lib.models.gpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=11, context_length=8, d_model=16, n_layers=1, n_heads=2)).eval()
    ctx, cont = list(range(1, 11)), [3, 4]
    got = continuation_logliks(model, [(ctx, cont)], max_length=8)
    ids = torch.tensor([(ctx + cont)[-9:]])
    logp = model(ids[:, :-1]).double().log_softmax(-1)
    want = logp[0, -2, 3] + logp[0, -1, 4]
    assert torch.allclose(got, want.reshape(1))
    # batching with right padding does not change a score
    both = continuation_logliks(model, [(ctx, cont), ([1], [2])], max_length=8, batch_size=2)
    alone = continuation_logliks(model, [([1], [2])], max_length=8)
    assert torch.allclose(both, torch.cat([got, alone]))


def test_multiple_choice_errors():
    with pytest.raises(ValueError, match="gold: expected an index in"):
        MCItem("a", ["b", "c"], gold=2)
    with pytest.raises(ValueError, match="choices: expected a list of at least 2"):
        MCItem("a", ["b"], gold=0)
    with pytest.raises(ValueError, match=r"pairs\[0\]: expected a non-empty context"):
        continuation_logliks(Bigram(), [([], [1])], max_length=4)
    with pytest.raises(ValueError, match=r"logliks\[0\]: expected shape \(2,\)"):
        multiple_choice_metrics([torch.zeros(3)], [MCItem("a", ["b", "c"], 0)])


# ---- contamination ----------------------------------------------------------------------------


def test_ngram_overlap_hand_derived():
    train = "The quick brown fox jumps over the lazy dog."
    index = ngram_index(train, n=3)
    assert words("Hello, WORLD-42!") == ["hello", "world", "42"]
    # "quick brown fox" and "brown fox jumps" are in the index, "fox jumps high" is not: 2 of 3
    assert ngram_overlap("QUICK brown\nfox jumps high", index, n=3) == pytest.approx(2 / 3)
    assert ngram_overlap("too short", index, n=3) == 0.0
    assert ngram_overlap(train, index, n=3) == 1.0
    with pytest.raises(ValueError, match="n: expected the index's n-gram length 3, got 4"):
        ngram_overlap("a b c d", index, n=4)
    with pytest.raises(ValueError, match="n: expected an int >= 1"):
        ngram_index(train, n=0)
