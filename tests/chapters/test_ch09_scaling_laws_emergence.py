"""roadmap_lib.chapters.ch09_scaling_laws_emergence: the sweep's driver and scores, the analysis of
its record, the figures, the exercise checks and the shipped artifact (chapter 09)."""

import matplotlib

matplotlib.use("Agg")

import itertools
import json
import math
import re

import matplotlib.pyplot as plt
import pytest
import torch

from roadmap_lib import DATA_DIR
from roadmap_lib.chapters.ch09_scaling_laws_emergence import (
    analysis,
    artifacts,
    exercises,
    plots,
    sweep,
)
from roadmap_lib.data import CharLMData
from roadmap_lib.exercises import ExerciseError
from roadmap_lib.generation import greedy
from roadmap_lib.models import GPT
from roadmap_lib.scaling import ChinchillaFit

LAW = ChinchillaFit(E=1.5, A=30.0, B=200.0, alpha=0.4, beta=0.45, objective=0.0)


def _synthetic_record(law=LAW):
    """A record laid out like the sweep's, its losses drawn from a known law (no noise)."""
    steps = list(range(50, 601, 50))
    runs = []
    for L, d in sweep.SIZES:
        n = sweep.gpt_param_counts(sweep.config(L, d, 100))["non_embedding"]
        loss = [law(n, s * 512).item() for s in steps]
        runs.append({"n_layers": L, "d_model": d, "seed": 0, "non_embedding": n, "val_steps": steps,
                     "val_loss": loss, "scores": {"accuracy": 1 / loss[-1], "exact_4": loss[-1] ** -4,
                                                      "log_likelihood": -loss[-1]}})
    runs.append(dict(runs[0], seed=1, val_loss=[v + 0.01 for v in runs[0]["val_loss"]]))
    runs.append(dict(runs[0], seed=2, val_loss=[v - 0.02 for v in runs[0]["val_loss"]]))
    return {"protocol": {"tokens_per_step": 512}, "runs": runs}, law


def test_exact_match_is_greedy_decoding_reproducing_the_next_k_characters():
    torch.manual_seed(0)
    lm = CharLMData(context=sweep.CONTEXT, batch_size=4)
    model = GPT(sweep.config(1, 16, len(lm.vocab.chars))).eval()
    x, y = lm.get_batch("val", torch.Generator().manual_seed(0))
    with torch.no_grad():
        correct = model(x).argmax(-1) == y
    k, checked = 3, 0
    for b in range(4):
        for start in (0, 5, 11):
            prefix = x[b:b + 1, :start + 1]
            out = greedy(model, prefix, k)
            same = torch.equal(out[0, start + 1:], y[b, start:start + k])
            assert same == bool(correct[b, start:start + k].all())
            checked += 1
    assert checked == 12


def test_score_is_consistent_and_the_run_is_reproducible():
    lm = sweep.data()
    a = sweep.run(1, 8, steps=50, lm=lm)
    b = sweep.run(1, 8, steps=50, lm=lm)
    assert a["val_loss"] == b["val_loss"] and a["scores"] == b["scores"]
    s = a["scores"]
    assert s["exact_1"] == s["accuracy"]
    exact = [s[f"exact_{k}"] for k in sweep.EXACT_K]
    assert all(u >= v for u, v in itertools.pairwise(exact))
    assert abs(-s["log_likelihood"] - a["val_loss"][-1]) < 0.15  # other windows, same model
    assert a["val_steps"] == [50] and a["non_embedding"] == 888


def test_analysis_recovers_a_known_law():
    record, law = _synthetic_record()
    f = analysis.fits(record)
    assert abs(f["L(N,D)"].alpha - law.alpha) < 0.02 and abs(f["L(N,D)"].beta - law.beta) < 0.02
    flops, loss, n_front = analysis.frontier(record)
    cs = sweep.curves(record)
    for c, got in zip(flops, loss):  # the best size at each C, from the law itself
        want = min(law(n, min(c / (6 * n), t[-1])).item() for n, t, _ in cs if c / (6 * n) >= t[0])
        assert abs(got - want) < 0.01  # linear interpolation in log D between eval points
    assert n_front[-1] > n_front[0]  # the frontier moves to larger models
    budget = 6 * 20_000 * 20_000 * 1.0
    rows = analysis.isoflop_optima(record, [budget])
    n_true = law.compute_optimal(budget)[0].item()
    assert rows[0]["n_opt"] is not None
    assert abs(math.log10(rows[0]["n_opt"] / n_true)) < 0.2
    spread = analysis.seed_spread(record)
    assert len(spread) == 1 and spread[0]["values"][1] - spread[0]["values"][0] == pytest.approx(0.01)
    table = analysis.emergence_table(record)
    assert table["N"] == sorted(table["N"]) and len(table["exact_4"]) == len(sweep.SIZES)


def test_plots_draw():
    record, _ = _synthetic_record()
    ax = plots.plot_loss_vs_compute(record, analysis.frontier(record))
    assert len(ax.lines) == len(sweep.SIZES) + 1
    rows = analysis.isoflop_optima(record, [1e9, 1e10])
    plots.plot_isoflop(rows, highlight=0)
    f = analysis.fits(record)["L(N)"]
    runs = sweep.main_runs(record)
    plots.plot_fit([r["non_embedding"] for r in runs], [r["val_loss"][-1] for r in runs], f,
                   xlabel="N", title="t")
    axes = plots.plot_emergence(analysis.emergence_table(record), ks=(4,))
    assert len(axes) == 3
    plt.close("all")


def test_exercise_checks_accept_the_answer_and_name_each_mistake():
    exercises.check_step_flops(lambda *a: exercises._flops(*a))
    exercises.check_compute_optimal(lambda *a: exercises._closed(*a))
    for mistakes, check in ((exercises.FLOP_MISTAKES, exercises.check_step_flops),
                            (exercises.OPTIMAL_MISTAKES, exercises.check_compute_optimal)):
        for words, wrong in mistakes.items():
            with pytest.raises(ExerciseError, match="likely mistake: " + re.escape(words)):
                check(wrong)


def test_artifact_is_registered_and_the_shipped_record_meets_the_issue():
    (a,) = artifacts.ARTIFACTS
    assert a.name == "scaling-sweep-jargon" and a.files == (sweep.FILE,)
    path = DATA_DIR / sweep.FILE
    if not path.is_file():
        pytest.skip("the sweep is not built")
    assert path.stat().st_size <= 5 * 2**20
    record = json.loads(path.read_text())
    runs = sweep.main_runs(record)
    n = [r["non_embedding"] for r in runs]
    assert len(set(n)) >= 15 and math.log10(max(n) / min(n)) >= 1.5
    assert all(len(r["val_loss"]) >= 3 for r in runs) and len(analysis.seed_spread(record)) >= 1


def test_main_runs_average_the_seeds_of_each_size_on_their_common_steps():
    record, _ = _synthetic_record()
    runs = sweep.main_runs(record)
    assert len(runs) == len(sweep.SIZES) and [r["non_embedding"] for r in runs] == sorted(r["non_embedding"] for r in runs)
    smallest = [r for r in record["runs"] if (r["n_layers"], r["d_model"]) == sweep.SIZES[0]]
    assert runs[0]["seeds"] == [0, 1, 2] and runs[1]["seeds"] == [0]
    for i, v in enumerate(runs[0]["val_loss"]):  # seeds at +0.01 and -0.02: the mean moves by -0.01/3
        assert v == pytest.approx(sum(r["val_loss"][i] for r in smallest) / 3)
        assert v == pytest.approx(smallest[0]["val_loss"][i] - 0.01 / 3)
    short = dict(smallest[1], val_steps=smallest[1]["val_steps"][:5], val_loss=smallest[1]["val_loss"][:5])
    record["runs"][record["runs"].index(smallest[1])] = short
    assert sweep.main_runs(record)[0]["val_steps"] == short["val_steps"]  # only steps every seed has
    assert [r["seed"] for r in sweep.seed_runs(record, 0)] == [0] * len(sweep.SIZES)
