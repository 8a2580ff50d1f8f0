"""Chapter 23's needle-in-a-haystack driver: fixed test windows, a grid per method, the artifact's loader."""

import torch

from roadmap_lib.chapters.ch23_long_context_rag import longctx, needle
from roadmap_lib.longcontext import NeedleTask


def test_cell_windows_are_fixed_and_end_with_the_key():
    d = needle.data()
    a, b = needle.cell_windows(d, 128, 0.5, 4), needle.cell_windows(d, 128, 0.5, 4)
    assert torch.equal(a, b) and a.shape == (4, 129)
    assert not torch.equal(a, needle.cell_windows(d, 128, 0.25, 4))
    text = "".join(d.vocab.chars[i] for i in a[0].tolist())
    key = text[-NeedleTask().key_len:]
    assert key.isdigit() and text.count(f"the key is {key}") == 2


def test_grid_shape_and_methods_share_windows():
    cfg = needle.NeedleConfig(lengths=(64, 128), depths=(0.0, 1.0), windows=3)
    d = needle.data()
    torch.manual_seed(0)
    model = longctx.new_model(len(d.vocab), longctx.LongCtxConfig(d_model=16, n_heads=2, n_layers=1)).eval()
    g = needle.grid(model, d, cfg, methods=("rope", "ntk"))
    assert set(g["found"]) == {"rope", "ntk"} and set(g["found"]["rope"]) == {"64", "128"}
    assert all(len(v) == 2 for by_len in g["loss"].values() for v in by_len.values())
    # at 1x every method is plain RoPE on the same windows: identical losses
    assert g["loss"]["rope"]["64"] == g["loss"]["ntk"]["64"]
    assert g["loss"]["rope"]["128"] != g["loss"]["ntk"]["128"]
    assert all(0 <= r <= 1 for by_len in g["found"].values() for v in by_len.values() for r in v)


def test_the_needle_task_never_draws_from_get_batch(monkeypatch):
    # why 23-needle is not in LEGACY_SAMPLER_ARTIFACTS: issue 12's sampler fix cannot change it
    from dataclasses import replace

    from roadmap_lib.chapters.ch23_long_context_rag import needle
    from roadmap_lib.data import CharLMData

    def refuse(*args, **kwargs):
        raise AssertionError("the needle task called CharLMData.get_batch")

    monkeypatch.setattr(CharLMData, "get_batch", refuse)
    cfg = replace(needle.NeedleConfig(), steps=2, windows=2)
    model, d, log = needle.train_needle(cfg, 0)
    assert any("val_loss" in row for row in log)
    assert set(needle.grid(model, d, cfg, lengths=[cfg.train_len])["found"]) == set(needle.longctx.METHODS)
