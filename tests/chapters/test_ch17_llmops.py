"""Chapter 17's experiment code: the traffic stream and its drifts, the monitor, the A/B helpers,
the continual-learning record and the figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from roadmap_lib.chapters.ch17_llmops import abtest, drift, forgetting, plots
from roadmap_lib.data import CharVocab
from roadmap_lib.models import GPT, GPTConfig


def test_stream_parts_share_the_stretch_without_overlap():
    parts = drift.stream_parts()
    lengths = [len(p) for p in parts.values()]
    assert max(lengths) - min(lengths) <= 8 * drift.LENGTH
    # no 200-character passage of the reference appears in the test part
    ref, test = parts["reference"], parts["test"]
    assert all(ref[i:i + 200] not in test for i in range(0, len(ref) - 200, 5000))


def test_add_noise_rate_and_alphabet():
    text = "x" * 20000
    noisy = drift.add_noise(text, 0.1, seed=0)
    changed = [c for c, d in zip(text, noisy) if c != d]
    assert abs(len(changed) / len(text) - 0.1 * 25 / 26) < 0.01  # a draw of "x" leaves it unchanged
    assert set(changed) <= set(drift.LETTERS)
    assert drift.add_noise(text, 0.0, seed=0) == text
    with pytest.raises(ValueError, match="rate"):
        drift.add_noise(text, 1.5, seed=0)


def tiny_scores(n, shift=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return drift.Scores(torch.rand(n, 63, generator=g) + shift, torch.rand(n, 63, generator=g) > 0.5,
                        torch.randn(n, 8, generator=g) + shift)


def test_drifted_day_replaces_the_share_asked():
    clean, other = tiny_scores(100), tiny_scores(50, shift=10.0, seed=1)
    idx = np.arange(32)
    day = drift.drifted_day(clean, other, idx, 8 / 32, np.random.default_rng(0))
    assert int((day.nll.mean(1) > 5).sum()) == 8
    assert torch.equal(clean.nll[:32], drift.drifted_day(clean, other, idx, 0.0, np.random.default_rng(0)).nll)


def test_monitor_statistics_react_to_a_shift():
    monitor = drift.Monitor(tiny_scores(128))
    same, shifted = tiny_scores(32, seed=2), tiny_scores(32, shift=0.5, seed=2)
    a, b = monitor.statistics(same), monitor.statistics(shifted)
    for s in drift.STATISTICS:
        assert b[s] > a[s]
    assert monitor.ks_nominal_p(shifted) < 1e-6 < monitor.ks_nominal_p(same)


def test_drift_experiment_on_synthetic_scores():
    """Calibration days and test days from the same distribution: the false alarm rate lands near
    the calibrated 5 %; a strong drift is always caught."""
    noise = {r: tiny_scores(200, shift=5 * r, seed=3) for r in drift.NOISE_RATES}
    scores = {"reference": tiny_scores(128, seed=4), "calibration": tiny_scores(200, seed=5), "noise": noise,
              "zetan": tiny_scores(60, shift=3.0, seed=6)}
    r = drift.run_drift_experiment(scores, seed=0, days=100)
    for s in drift.STATISTICS:
        assert r["false_alarm"][s] < 0.2
        assert r["detection"]["noise"][0.1][s] == 1.0
        assert r["detection"]["zetan"][8 / 32][s] == 1.0


def test_score_batches_equal_one_pass():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, context_length=16, d_model=16, n_layers=1, n_heads=2)).eval()
    ids = torch.randint(0, 20, (10, 16))
    whole, parts = drift.score(model, ids, batch=64), drift.score(model, ids, batch=3)
    torch.testing.assert_close(whole.nll, parts.nll)
    torch.testing.assert_close(whole.emb, parts.emb)


def test_windows_cut_the_text():
    vocab = CharVocab("abc")
    w = drift.windows("abc" * 50, vocab)
    assert w.shape == (150 // drift.LENGTH, drift.LENGTH)
    assert vocab.decode(w[0].tolist()) == ("abc" * 50)[: drift.LENGTH]


def test_ab_helpers():
    rng = np.random.default_rng(0)
    a = {"last correct": (rng.random(80) < 0.6).astype(float), "mean nll": rng.normal(2.0, 0.5, 80)}
    b = {"last correct": (rng.random(80) < 0.4).astype(float), "mean nll": a["mean nll"] + 0.2}
    idx = np.arange(80)
    paired = abtest.tests_on(a, b, idx)
    split = abtest.tests_on(a, b, idx[:40], idx[40:])
    assert paired["NLL p"] < 0.01 and paired["mean NLL B"] == pytest.approx(paired["mean NLL A"] + 0.2)
    assert split["success rate A"] == pytest.approx(a["last correct"][:40].mean())
    power = abtest.power_by_traffic(a, b, traffic=(4, 8), draws=5)
    assert power["paired"] == [0.0, 1.0]  # 4 pairs: 16 sign patterns, the smallest p is 2/16 > 0.05
    with pytest.raises(ValueError, match="traffic"):
        abtest.power_by_traffic(a, b, traffic=(50,), draws=1)
    assert abtest.simulated_power(0.5, 0.6, 388, sims=1000) == pytest.approx(0.8, abs=0.05)


def fake_record():
    runs = []
    for i, m in enumerate(forgetting.METHODS):
        for s in forgetting.SEEDS:
            runs.append({"method": m, "seed": s, "steps": 10, "forgetting": 3.0 - i + 0.1 * s, "gain": 3.0 - 0.1 * i,
                         "before": {"old": 1.8, "new": 4.2}, "after": {"old": 4.8 - i, "new": 1.2 + 0.1 * i}})
    return {"runs": runs, "steps": 10}


def test_summary_means_and_spreads():
    rows = forgetting.summary(fake_record())
    assert [r["method"] for r in rows] == list(forgetting.METHODS)
    assert rows[0]["forgetting"] == pytest.approx(3.1) and rows[0]["forgetting_max"] == pytest.approx(3.2)
    assert all(r["seeds"] == 3 for r in rows)


def test_figures_draw():
    record = fake_record()
    assert plots.plot_forgetting(record).get_xlabel().startswith("gain")
    result = {"detection": {"noise": {0.0: dict.fromkeys(drift.STATISTICS, 0.05), 0.1: dict.fromkeys(drift.STATISTICS, 1.0)}},
              "day_stats": {"noise": {0.0: {s: [0.0, 1.0] for s in drift.STATISTICS},
                                      0.1: {s: [2.0, 3.0] for s in drift.STATISTICS}}},
              "thresholds": dict.fromkeys(drift.STATISTICS, 1.5)}
    assert len(plots.plot_detection([result, result], "noise").lines) == 4
    plots.plot_day_statistic(result, "noise", 0.1, "mean NLL")
    plots.plot_power((8, 16), {"paired": [1, 1], "split": [0.2, 0.5]})
    plots.plot_peeking((1, 5), np.array([[0.05, 0.1], [0.06, 0.12]]), 0.05)
    matplotlib.pyplot.close("all")


@pytest.mark.slow
def test_replay_run_is_deterministic_for_few_steps():
    """Two 4-step runs with their evaluations on both domains (several seconds)."""
    a = forgetting.run("replay 50%", seed=0, steps=4)
    b = forgetting.run("replay 50%", seed=0, steps=4)
    assert a["after"] == b["after"] and a["train_loss"] == b["train_loss"]
    assert a["forgetting"] == pytest.approx(a["after"]["old"] - a["before"]["old"])


# 17-continual's verify (re-running one recorded cell) runs once, in tests/test_artifacts.py.
