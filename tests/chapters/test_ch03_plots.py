"""Chapter 03's figure helpers: the all-pairs RoPE score and the loss-by-position figure."""

import matplotlib
import torch

from roadmap_lib.chapters.ch03_positional_encodings.plots import (
    mean_pair_score,
    plot_position_loss,
    plot_rope_rotation,
)
from roadmap_lib.positional import RoPEConfig, RotaryEmbedding

matplotlib.use("Agg")


def test_mean_pair_score_is_the_rope_score_of_all_ones_vectors():
    dim, dist = 16, torch.arange(0, 40)
    ones = torch.ones(1, 1, 40, dim, dtype=torch.float64)
    rot = RotaryEmbedding(RoPEConfig(dim))
    q, k = rot(ones, ones)  # q at positions 0..39, k the same
    scores = (q[0, 0] * k[0, 0, 0]).sum(-1) / dim  # query at m, key at 0
    torch.testing.assert_close(mean_pair_score(dist, dim), scores.double())
    assert mean_pair_score(torch.tensor([0]), 128).item() == 1.0


def test_figures_draw():
    axes = plot_rope_rotation(position=3, pair=1, dim=16)
    assert len(axes[1].get_lines()) == 4  # one pair, all pairs (16), all pairs (128), the marker
    ax = plot_position_loss(torch.rand(256), torch.rand(256), 64)
    assert len(ax.get_lines()[1].get_xdata()) == 192
