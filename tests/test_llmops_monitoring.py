"""roadmap_lib.llmops.monitoring against scipy.stats, brute force and transformers' loss."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import GPT2Config, GPT2LMHeadModel

from roadmap_lib.llmops import monitoring as mon


@given(st.lists(st.integers(-5, 5), min_size=1, max_size=40), st.lists(st.integers(-5, 5), min_size=1, max_size=40))
@settings(max_examples=80, deadline=None)
def test_ks_statistic_matches_scipy_with_ties(a, b):
    a, b = np.array(a, dtype=float) / 2, np.array(b, dtype=float) / 2
    assert mon.ks_statistic(a, b) == pytest.approx(scipy.stats.ks_2samp(a, b, method="asymp").statistic, abs=1e-12)


@pytest.mark.parametrize("n, m, shift", [(200, 300, 0.0), (500, 2000, 0.1), (1000, 1000, 0.2)])
def test_ks_pvalue_is_kolmogorovs_limit(n, m, shift):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=n), rng.normal(size=m) + shift
    d = mon.ks_statistic(a, b)
    p = mon.ks_pvalue(d, n, m)
    assert p == pytest.approx(scipy.stats.kstwobign.sf(np.sqrt(n * m / (n + m)) * d), abs=1e-10)
    assert p == pytest.approx(scipy.stats.ks_2samp(a, b, method="asymp").pvalue, abs=0.03)  # scipy: finite-n kstwo


def test_ks_pvalue_is_uniform_under_the_null():
    rng = np.random.default_rng(0)
    ps = [mon.ks_pvalue(mon.ks_statistic(rng.normal(size=300), rng.normal(size=300)), 300, 300) for _ in range(400)]
    assert abs(np.mean(np.array(ps) < 0.05) - 0.05) < 0.035


def mmd_loops(x, y, s):
    k = lambda u, v: np.exp(-np.sum((u - v) ** 2) / (2 * s * s))
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_matches_the_double_sum():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 3, generator=g), torch.randn(9, 3, generator=g) + 0.5
    assert mon.mmd2_unbiased(x, y, 1.3) == pytest.approx(mmd_loops(x.numpy().astype(float), y.numpy().astype(float), 1.3), abs=1e-6)


def test_mmd_is_near_zero_without_shift_and_grows_with_it():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(200, 4, generator=g)
    same = mon.mmd2_unbiased(base[:100], base[100:], 2.0)
    shifted = mon.mmd2_unbiased(base[:100], base[100:] + 1.0, 2.0)
    assert abs(same) < 0.01 < shifted
    assert mon.mmd2_unbiased(base[:100], base[100:], 2.0) == pytest.approx(mon.mmd2_unbiased(base[100:], base[:100], 2.0))


def test_median_bandwidth_by_hand():
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[3.0], [7.0]])
    # distances between distinct points (both orders): 1, 3, 7, 2, 6, 4 -> median of 12 values = (3 + 4) / 2
    assert mon.median_bandwidth(x, y) == pytest.approx(torch.tensor([1, 3, 7, 2, 6, 4.0]).repeat(2).median().item())


def tiny_gpt2():
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=30, n_positions=16, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config).eval()


def test_token_nll_matches_transformers_loss():
    hf = tiny_gpt2()
    ids = torch.randint(0, 30, (3, 12))
    nll = mon.token_nll(Wrapper(hf).eval(), ids)
    assert nll.shape == (3, 11)
    with torch.no_grad():
        assert nll.mean().item() == pytest.approx(hf(ids, labels=ids).loss.item(), abs=1e-5)


class Wrapper(torch.nn.Module):
    """transformers' model as ids -> logits, with its final norm reachable as ``ln_f``."""

    def __init__(self, hf):
        super().__init__()
        self.hf, self.ln_f = hf, hf.transformer.ln_f

    def forward(self, ids):
        return self.hf(ids).logits


def test_score_windows_one_pass():
    hf = tiny_gpt2()
    ids = torch.randint(0, 30, (4, 10))
    out = mon.score_windows(Wrapper(hf).eval(), ids)
    with torch.no_grad():
        hidden = hf(ids, output_hidden_states=True).hidden_states[-1]  # after ln_f
        logits = hf(ids).logits
    torch.testing.assert_close(out["embedding"], hidden.mean(1))
    assert torch.equal(out["correct"], logits[:, :-1].argmax(-1) == ids[:, 1:])
    torch.testing.assert_close(out["nll"], mon.token_nll(Wrapper(hf).eval(), ids))
    assert not hf.transformer.ln_f._forward_hooks  # the hook is removed


def test_calibrated_threshold_and_alarm_rate():
    null = np.arange(1, 101)  # 1..100
    t = mon.calibrate_threshold(null, 0.05)
    assert t == 95 and mon.alarm_rate(null, t) == pytest.approx(0.05)
    assert mon.calibrate_threshold(null, 0.5) == 50


@pytest.mark.parametrize("call, words", [
    (lambda: mon.token_nll(torch.nn.Identity(), torch.zeros(2, 3)), "ids: expected an int64"),
    (lambda: mon.token_nll(torch.nn.Identity(), torch.zeros(2, 1, dtype=torch.long)), "length >= 2"),
    (lambda: mon.score_windows(torch.nn.Identity(), torch.zeros(2, 3, dtype=torch.long)), "module"),
    (lambda: mon.ks_statistic([], [1.0]), "a: expected a non-empty"),
    (lambda: mon.ks_pvalue(1.5, 3, 3), "d: expected"),
    (lambda: mon.ks_pvalue(0.5, 0, 3), "n_a"),
    (lambda: mon.mmd2_unbiased(torch.zeros(3, 2), torch.zeros(3, 4), 1.0), "dimension"),
    (lambda: mon.mmd2_unbiased(torch.zeros(3, 2), torch.zeros(3, 2), 0.0), "bandwidth"),
    (lambda: mon.mmd2_unbiased(torch.zeros(1, 2), torch.zeros(3, 2), 1.0), "x: expected a tensor of points"),
    (lambda: mon.calibrate_threshold([1.0, 2.0], 1.0), "false_alarm_rate"),
])
def test_bad_input_is_named(call, words):
    with pytest.raises(ValueError, match=words):
        call()
