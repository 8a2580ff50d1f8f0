"""Patches, the digits and the generated scenes of roadmap_lib.vision."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.vision import (
    CELL,
    caption,
    load_digits,
    make_scenes,
    patchify,
    scene,
    scene_pairs,
    shape_mask,
    split,
    unpatchify,
)


def test_patchify_is_a_strided_convolution():
    """A linear layer on our patches equals a Conv2d with kernel = stride = patch (same weights)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 12, generator=g)
    conv = torch.nn.Conv2d(3, 5, kernel_size=4, stride=4)
    ours = patchify(x, 4) @ conv.weight.reshape(5, -1).T + conv.bias
    theirs = conv(x).flatten(2).transpose(1, 2)  # (batch, patches row-major, 5)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_patchify_by_hand():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    p = patchify(x, 2)
    assert p.shape == (1, 4, 4)
    assert p[0, 0].tolist() == [0, 1, 4, 5] and p[0, 1].tolist() == [2, 3, 6, 7] and p[0, 2].tolist() == [8, 9, 12, 13]


@settings(max_examples=25, deadline=None)
@given(c=st.integers(1, 3), gh=st.integers(1, 4), gw=st.integers(1, 4), p=st.integers(1, 4))
def test_unpatchify_inverts_patchify(c, gh, gw, p):
    x = torch.randn(2, c, gh * p, gw * p)
    assert torch.equal(unpatchify(patchify(x, p), p, c, gh * p, gw * p), x)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="patch"):
        patchify(torch.zeros(1, 1, 8, 8), 3)
    with pytest.raises(ValueError, match="images"):
        patchify(torch.zeros(8, 8), 2)
    with pytest.raises(ValueError, match="patches"):
        unpatchify(torch.zeros(1, 3, 4), 2, 1, 4, 4)
    with pytest.raises(ValueError, match="shape"):
        shape_mask("star", 5)
    with pytest.raises(ValueError, match="relation"):
        caption(("red", "circle"), ("blue", "square"), relation="above")
    with pytest.raises(ValueError, match="test_fraction"):
        split(10, 1.5, 0)


def test_digits_load_offline():
    images, labels = load_digits()
    assert images.shape == (1797, 1, 8, 8) and labels.shape == (1797,)
    assert images.min() == 0 and images.max() == 1 and set(labels.tolist()) == set(range(10))


def test_split_is_a_seeded_partition():
    tr, te = split(100, 0.3, seed=4)
    assert len(te) == 30 and sorted(torch.cat([tr, te]).tolist()) == list(range(100))
    assert torch.equal(split(100, 0.3, seed=4)[1], te) and not torch.equal(split(100, 0.3, seed=5)[1], te)


def test_shape_masks():
    assert shape_mask("square", 5).sum() == 25
    circle, tri = shape_mask("circle", 7), shape_mask("triangle", 7)
    assert 0.6 * 49 < circle.sum() < 0.9 * 49 and circle[0, 0] == 0 and circle[3, 3] == 1
    assert tri[0].sum() < tri[-1].sum()  # apex up: rows widen downwards


def test_scene_puts_each_colour_in_its_cell():
    img = scene(("red", "square"), ("blue", "circle"), gen=torch.Generator().manual_seed(0), noise=0.0)
    assert img.shape == (3, CELL, 2 * CELL)
    left, right = img[:, :, :CELL], img[:, :, CELL:]
    assert left[0].sum() > 5 * left[2].sum() and right[2].sum() > 3 * right[0].sum()


def test_captions_and_scenes():
    a, b = ("red", "circle"), ("blue", "square")
    assert caption(a, b) == "a red circle left of a blue square"
    assert caption(a, b, "right") == "a blue square right of a red circle"
    pairs = scene_pairs()
    assert len(pairs) == 72 and len(set(pairs)) == 72
    images, caps, which = make_scenes(pairs[:3], 20, seed=0, both_relations=True)
    assert images.shape == (20, 3, 8, 16) and len(caps) == 20
    assert {"left" in c for c in caps} == {True, False}
    assert all(caps[i] in (caption(*pairs[w]), caption(*pairs[w], "right")) for i, w in enumerate(which.tolist()))
