"""Chapter 24's drivers, figures and artifact loaders, on tiny runs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from roadmap_lib.chapters.ch24_multimodal import artifacts, plots
from roadmap_lib.chapters.ch24_multimodal import experiments as ex
from roadmap_lib.measure import count_parameters
from roadmap_lib.models.vit import ViTForImageClassification
from roadmap_lib.vision import OBJECTS, scene_pairs


def test_the_two_digit_models_have_about_the_same_size():
    vit, cnn = count_parameters(ViTForImageClassification(ex.VIT_DIGITS)), count_parameters(ex.SmallCNN(width=30))
    assert abs(vit - cnn) < 0.05 * cnn
    assert ex.SmallCNN(width=30)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_a_short_rerun_repeats_the_start_of_a_long_run():
    x, y = torch.randn(40, 1, 8, 8), torch.randint(0, 10, (40,))
    runs = []
    for stop in (None, 5):
        torch.manual_seed(0)
        runs.append(ex.train_classifier(ex.SmallCNN(width=4), x, y, steps=12, seed=3, batch=8, stop_after=stop))
    assert len(runs[0]) == 12 and len(runs[1]) == 5
    assert [r["loss"] for r in runs[0][:5]] == [r["loss"] for r in runs[1]]


def test_captions_encode_to_fixed_length_with_eot_last():
    tok = ex.caption_tokenizer()
    ids = ex.encode_captions(tok, ["a red circle left of a blue square", "a green triangle right of a red square"])
    assert ids.shape == (2, 9) and (ids[:, -1] == tok.word_id("<eot>")).all()
    assert tok.unk_id not in ids.tolist()[0] + ids.tolist()[1]


def test_held_out_layouts_leave_every_object_on_both_sides_in_training():
    held = ex.held_out_pairs()
    seen = [p for p in scene_pairs() if p not in held]
    assert len(held) == 12 and len(seen) == 60
    assert {a for a, _ in seen} == set(OBJECTS) and {b for _, b in seen} == set(OBJECTS)


def test_clip_driver_and_metrics_run():
    model, log = ex.train_clip(steps=3, n_train=64, batch=16)
    assert len(log) == 3 and all(r["loss"] > 0 for r in log)
    zs = ex.zero_shot(model, ex.held_out_pairs(), n=20)
    assert set(zs) == {"accuracy", "swapped", "left colour", "left shape", "right colour", "right shape"}
    assert all(0.0 <= v <= 1.0 for v in zs.values())
    r = ex.retrieval(model, ex.held_out_pairs(), n_layouts=6, repeats=2)
    assert r["n"] == 6 and r["image->text R@5"] >= r["image->text R@1"]


def test_bag_of_frames_cannot_hear_time_order():
    model = ex.BagOfFrames()
    x = torch.randn(3, 1, 32, 48)
    torch.testing.assert_close(model(x), model(x.flip(-1)))


def test_confusion_counts_every_example():
    model = ex.BagOfFrames()
    x, y = torch.randn(10, 1, 32, 48), torch.randint(0, 5, (10,))
    conf = ex.confusion(model, x, y, 5)
    assert conf.sum() == 10 and conf.sum(1).tolist() == torch.bincount(y, minlength=5).tolist()


def test_plots_draw():
    fig, axes = matplotlib.pyplot.subplots(1, 5)
    plots.plot_seeds({"a": [0.5, 0.6, 0.7], "b": [0.8, 0.8, 0.9]}, ax=axes[0])
    model = ViTForImageClassification(ex.VIT_DIGITS)
    img = torch.rand(1, 8, 8)
    plots.plot_cls_attention(img, model.vit.attention_maps(img.unsqueeze(0)), 1, None, (4, 4), ax=axes[1])
    plots.plot_losses({"x": [3.0, 2.0, 1.0]}, every=10, ax=axes[2])
    plots.show_scenes(torch.rand(1, 3, 8, 16), ["a red circle left of a blue square"], [axes[3]])
    plots.show_spectrograms(torch.rand(1, 32, 48), ["tone"], [axes[4]])
    assert len(axes[0].patches) == 2
    matplotlib.pyplot.close(fig)


def test_missing_results_name_the_build_command(tmp_path):
    for name, command in ((artifacts.DIGITS_JSON, "build multimodal-vit-digits"),
                          (artifacts.CLIP_JSON, "build multimodal-clip"), (artifacts.SOUNDS_JSON, "build multimodal-sounds"),
                          (artifacts.DIT_JSON, "build multimodal-dit"),
                          (artifacts.GUIDE_JSON, "build multimodal-dit-guidance"),
                          (artifacts.SCHED_JSON, "build multimodal-dit-schedules")):
        with pytest.raises(FileNotFoundError, match=command):
            artifacts.load_results(name, tmp_path)
    with pytest.raises(ValueError, match="name"):
        artifacts.load_results("24_other.json", tmp_path)
    assert sorted(f for a in artifacts.ARTIFACTS for f in a.files) == sorted(
        [artifacts.DIGITS_JSON, artifacts.VIT_CKPT, artifacts.CLIP_JSON, artifacts.CLIP_CKPT,
         artifacts.SOUNDS_JSON, artifacts.AUDIO_CKPT, artifacts.DIT_JSON, artifacts.DIT_CKPT, artifacts.GUIDE_JSON,
         artifacts.SCHED_JSON, artifacts.COSINE_CKPT])
