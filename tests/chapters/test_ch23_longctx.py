"""Chapter 23's context-extension helpers."""

import pytest
import torch

from roadmap_lib.chapters.ch23_long_context_rag import longctx


def test_rope_config_per_method():
    assert longctx.rope_config("ntk", 1, 16, 64).scaling is None
    assert longctx.rope_config("rope", 4, 16, 64).scaling is None
    y = longctx.rope_config("yarn", 4, 16, 64)
    assert y.scaling == "yarn" and y.factor == 4.0 and y.original_max_position == 64
    with pytest.raises(ValueError, match="method"):
        longctx.rope_config("alibi", 2, 16, 64)


def test_rescaled_swaps_and_restores_and_changes_the_output():
    cfg = longctx.LongCtxConfig(d_model=16, n_heads=2, n_layers=1)
    torch.manual_seed(0)
    model = longctx.new_model(20, cfg).eval()
    ids = torch.randint(0, 20, (1, 128))
    before = model(ids)
    with longctx.rescaled(model, "linear", 2, 64):
        assert model.rotary.config.scaling == "linear"
        assert not torch.allclose(model(ids), before)
    assert model.rotary.config.scaling is None
    torch.testing.assert_close(model(ids), before)


def test_summary_and_windows():
    curve = {"rope": {1: [1.0] * 4, 2: [1.0] * 4 + [3.0] * 4}}
    s = longctx.summary(curve, 4)
    assert s["rope"][1] == {"all": 1.0} and s["rope"][2] == {"all": 2.0, "beyond": 3.0}

    class D:
        def __init__(self):
            self.splits = {"val": torch.arange(1000)}

    w = longctx.eval_windows(D(), 10, 3)
    assert w.shape == (3, 11) and torch.equal(w[:, 1:] - w[:, :-1], torch.ones(3, 10, dtype=torch.long))
