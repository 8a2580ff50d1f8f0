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
