"""Chapter 24, section 6: the diffusion-transformer driver, its judges and its figure, on tiny runs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from roadmap_lib.chapters.ch24_multimodal import artifacts, plots
from roadmap_lib.chapters.ch24_multimodal import diffusion_digits as dd
from roadmap_lib.diffusion import DiTConfig

SMALL = DiTConfig(image_size=8, patch_size=2, channels=1, d_model=8, n_layers=1, n_heads=2, d_ff=16,
                  num_classes=10, freq_dim=8)


def test_window_means_by_hand():
    assert dd.window_means([1.0, 3.0, 5.0, 7.0, 9.0], 2) == [2.0, 6.0]
    with pytest.raises(ValueError, match="window: expected an int >= 1"):
        dd.window_means([1.0], 0)


def test_the_model_range_round_trips():
    x = torch.rand(3, 1, 8, 8)
    assert torch.allclose(dd.to_image_range(dd.to_model_range(x)), x)
    assert dd.to_image_range(torch.tensor([-3.0, 3.0])).tolist() == [0.0, 1.0]


@pytest.mark.slow
def test_a_short_rerun_repeats_the_start_of_a_long_run():
    _, full = dd.train_dit(steps=6, seed=1, config=SMALL, batch=8)
    _, short = dd.train_dit(steps=6, seed=1, config=SMALL, batch=8, stop_after=3)
    assert len(full) == 6 and full[:3] == short


def test_sample_quality_scores_requested_labels():
    torch.manual_seed(0)
    model = dd.DiT(SMALL).eval()
    labels = dd.requested_labels(2)
    assert labels.tolist()[:4] == [0, 0, 1, 1] and len(labels) == 20
    # reads every set of 20 samples as the asked classes (and real digits as zeros)
    perfect = {"oracle": lambda images: dd.requested_labels(2) if len(images) == 20
               else torch.zeros(len(images), dtype=torch.long)}
    q = dd.sample_quality(model, perfect, per_class=2)["oracle"]
    assert q["conditional samples"] == 1.0 and q["per class"] == [1.0] * 10
    assert q["null-class samples"] == 1.0 and q["null-class prediction shares"] == pytest.approx([0.1] * 10)
    zeros = dd.sample_quality(model, {"zeros": lambda images: torch.zeros(len(images), dtype=torch.long)}, per_class=2)
    assert zeros["zeros"]["conditional samples"] == pytest.approx(0.1)
    assert zeros["zeros"]["per class"][0] == 1.0 and sum(zeros["zeros"]["per class"][1:]) == 0.0


def test_generation_is_seeded_and_in_image_range():
    torch.manual_seed(0)
    model = dd.DiT(SMALL).eval()
    labels = torch.tensor([3, 10])
    a, traj = dd.generate(model, labels, seed=4, steps=5, return_trajectory=True)
    assert a.shape == (2, 1, 8, 8) and 0.0 <= a.min() and a.max() <= 1.0 and len(traj) == 6
    assert torch.equal(a, dd.generate(model, labels, seed=4, steps=5))


def test_per_class_accuracy_checks_shapes():
    assert dd.per_class_accuracy(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]), 2) == [0.5, 1.0]
    with pytest.raises(ValueError, match="pred: expected the shape of labels"):
        dd.per_class_accuracy(torch.tensor([0]), torch.tensor([0, 1]))


def test_logistic_judge_reads_real_digits():
    _, _, xte, yte = dd.digits_split()
    assert (dd.logistic_judge()(xte) == yte).float().mean().item() > 0.9


def test_digit_grid_draws_and_checks_rows():
    ax = plots.show_digit_grid(torch.rand(6, 1, 8, 8), 2, row_labels=["a", "b"])
    assert ax.images[0].get_array().shape == (19, 28)
    with pytest.raises(ValueError, match="n_rows: expected a divisor"):
        plots.show_digit_grid(torch.rand(5, 1, 8, 8), 2)


def test_the_dit_artifact_is_registered_with_its_judge_first():
    art = {a.name: a for a in artifacts.ARTIFACTS}[artifacts.DIT]
    assert art.needs == (artifacts.DIGITS,) and art.files == (artifacts.DIT_JSON, artifacts.DIT_CKPT)
    with pytest.raises(ValueError, match="name: expected one of"):
        artifacts.load_results("nope.json")


@pytest.mark.skipif(not (artifacts.DATA_DIR / artifacts.DIT_CKPT).is_file(), reason="multimodal-dit not built")
def test_the_shipped_dit_is_small_and_loads():
    assert (artifacts.DATA_DIR / artifacts.DIT_CKPT).stat().st_size <= 500_000
    model = artifacts.load_dit()
    out = model(torch.zeros(2, 1, 8, 8), torch.tensor([0, 199]), torch.tensor([0, 10]))
    assert out.shape == (2, 1, 8, 8)


def test_guided_accuracy_at_scale_one_is_sample_quality():
    torch.manual_seed(0)
    model = dd.DiT(SMALL).eval()
    judge = {"first pixel": lambda images: (images[:, 0, 0, 0] * 9.999).long()}
    got = dd.guided_accuracy(model, judge, 1.0, seed=3, per_class=2)["first pixel"]
    want = dd.sample_quality(model, judge, seed=3, per_class=2)["first pixel"]
    assert got["accuracy"] == want["conditional samples"] and got["per class"] == want["per class"]


def test_guidance_sweep_shapes_and_chance_reference():
    torch.manual_seed(0)
    model = dd.DiT(SMALL).eval()
    oracle = {"oracle": lambda images: dd.requested_labels(1)}  # reads every set as the asked classes
    out = dd.guidance_sweep(model, oracle, scales=(0.0, 2.0), seeds=(0, 1), per_class=1)
    assert out["accuracy"]["oracle"] == [[1.0, 1.0], [1.0, 1.0]]
    assert out["per class"]["oracle"] == [[1.0] * 10] * 2 and out["null-class samples"]["oracle"] == [1.0, 1.0]
    with pytest.raises(ValueError, match="scales, seeds: expected non-empty"):
        dd.guidance_sweep(model, oracle, scales=())


def test_guidance_plot_draws_and_checks_rows():
    fig, ax = matplotlib.pyplot.subplots()
    plots.plot_guidance([0.0, 1.0], {"j": [[0.1, 0.12, 0.09], [0.2, 0.25, 0.22]]}, ax=ax, reference={"j": 0.1})
    assert len(ax.lines) >= 3
    with pytest.raises(ValueError, match="accuracy: expected one row per scale"):
        plots.plot_guidance([0.0], {"j": [[0.1], [0.2]]}, ax=ax)
    matplotlib.pyplot.close(fig)


def test_the_guidance_artifact_needs_the_dit():
    art = {a.name: a for a in artifacts.ARTIFACTS}[artifacts.GUIDE]
    assert artifacts.DIT in art.needs and art.files == (artifacts.GUIDE_JSON,)


@pytest.mark.skipif(not (artifacts.DATA_DIR / artifacts.GUIDE_JSON).is_file(), reason="multimodal-dit-guidance not built")
def test_the_guidance_record_agrees_with_the_dit_record_at_scale_one():
    """Guidance 1 with sampling seed 0 draws the samples the DiT record judged for its seed 0."""
    guide, dit = artifacts.load_results(artifacts.GUIDE_JSON), artifacts.load_results(artifacts.DIT_JSON)
    i = guide["scales"].index(1.0)
    for judge, rows in guide["accuracy"].items():
        assert len(rows) == len(guide["scales"]) and all(len(r) == len(guide["sampling_seeds"]) for r in rows)
        assert rows[i][0] == pytest.approx(dit["runs"][0]["quality"][judge]["conditional samples"])
        assert guide["null-class samples"][judge][0] == pytest.approx(dit["runs"][0]["quality"][judge]["null-class samples"])


def test_sample_quality_reuses_samples_already_drawn():
    torch.manual_seed(0)
    model = dd.DiT(SMALL).eval()
    judge = {"first pixel": lambda images: (images[:, 0, 0, 0] * 9.999).long()}
    labels = dd.requested_labels(2)
    drawn = (dd.generate(model, labels, seed=5), dd.generate(model, torch.full_like(labels, 10), seed=5))
    assert dd.sample_quality(model, judge, seed=5, per_class=2, samples=drawn) == \
        dd.sample_quality(model, judge, seed=5, per_class=2)
    with pytest.raises(ValueError, match="samples: expected two tensors"):
        dd.sample_quality(model, judge, per_class=2, samples=(drawn[0][:3], drawn[1]))


def test_schedules_by_name():
    assert dd.schedule().T == dd.schedule("cosine").T == dd.DIFFUSION_T
    assert not torch.equal(dd.schedule("linear").alpha_bar, dd.schedule("cosine").alpha_bar)
    with pytest.raises(ValueError, match="name: expected one of"):
        dd.schedule("quadratic")


def test_schedule_comparison_reuses_trained_models_and_samples_on_their_schedule():
    torch.manual_seed(0)
    models = {(name, 0): dd.DiT(SMALL).eval() for name in dd.SCHEDULES}
    with torch.no_grad():  # a model whose output is not zero, so the schedule matters
        models["cosine", 0].final.bias.fill_(0.3)
        models["linear", 0].final.bias.fill_(0.3)
    judge = {"mean": lambda images: (images.mean((1, 2, 3)) * 9.999).long()}
    out = dd.schedule_comparison(judge, seeds=(0,), scales=(1.0,), trained=models)
    assert out["loss"] == {"linear": [], "cosine": []} and set(out["models"]) == set(models)
    for name in dd.SCHEDULES:
        want = dd.guided_accuracy(models[name, 0], judge, 1.0, schedule_name=name)["mean"]["accuracy"]
        assert out["accuracy"][name]["mean"] == [[want]]
    lin = dd.generate(models["cosine", 0], dd.requested_labels(1), steps=5)
    cos = dd.generate(models["cosine", 0], dd.requested_labels(1), steps=5, schedule_name="cosine")
    assert not torch.equal(lin, cos)


def test_the_schedules_artifact_needs_the_dit():
    art = {a.name: a for a in artifacts.ARTIFACTS}[artifacts.SCHED]
    assert artifacts.DIT in art.needs and art.files == (artifacts.SCHED_JSON, artifacts.COSINE_CKPT)
