"""Chapter 04's activation study: the shipped results are complete and read back by seed."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from roadmap_lib.chapters.ch04_core_components import activations as act  # noqa: E402
from roadmap_lib.chapters.ch04_core_components.plots import plot_activation_seeds  # noqa: E402


def test_shipped_results_cover_every_activation_and_seed_at_equal_parameters():
    info = act.load_results()
    assert {(r["activation"], r["seed"]) for r in info["runs"]} == {(a, s) for a in act.ACTIVATIONS for s in act.SEEDS}
    assert len({r["params"] for r in info["runs"]}) == 1
    assert {r["d_ff"] for r in info["runs"] if r["activation"] in act.GATED} == {64}
    assert info["recipe"] == act.RECIPE


def test_losses_by_activation_orders_by_seed():
    info = {"runs": [{"activation": a, "seed": s, "val_loss": 10 * s + i}
                     for s in (2, 0, 1) for i, a in enumerate(act.ACTIVATIONS)]}
    out = act.losses_by_activation(info)
    assert out["relu"] == [0, 10, 20] and out["geglu"] == [4, 14, 24]
    ax = plot_activation_seeds(out)
    assert len(ax.collections) == 2 * len(act.ACTIVATIONS)  # a mean bar and the seed dots each
    assert [t.get_text() for t in ax.get_xticklabels()] == list(act.ACTIVATIONS)


def test_bad_activation_and_missing_file_are_refused(tmp_path):
    with pytest.raises(ValueError, match="activation: expected one of"):
        act.run_one("tanh", 0)
    with pytest.raises(FileNotFoundError, match="build 04-activations"):
        act.load_results(tmp_path / "missing.json")
