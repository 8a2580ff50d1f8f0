"""Our ViT against transformers' ViTForImageClassification on the same random weights."""

import pytest
import torch
from transformers import ViTForImageClassification as HFViT

from roadmap_lib.models.vit import (
    ViTConfig,
    ViTForImageClassification,
    vit_config_from_hf,
    vit_config_to_hf,
    vit_from_hf,
    vit_to_hf,
)

CONFIG = ViTConfig(image_height=8, image_width=16, patch_size=4, channels=3, d_model=32, n_layers=2,
                   n_heads=4, d_ff=48, num_labels=5)


def _hf(config=CONFIG, seed=0):
    torch.manual_seed(seed)
    hf = HFViT(vit_config_to_hf(config)).eval()
    with torch.no_grad():  # move every weight away from its (often zero or one) initial value
        for p in hf.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return hf


def test_logits_equal_transformers():
    hf = _hf()
    ours = vit_from_hf(hf).eval()
    x = torch.rand(3, 3, 8, 16)
    with torch.no_grad():
        theirs, mine = hf(pixel_values=x).logits, ours(x)
    assert theirs.abs().max() > 0.3  # the comparison is not between two near-zero outputs
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


def test_both_directions_round_trip():
    torch.manual_seed(1)
    ours = ViTForImageClassification(CONFIG).eval()
    with torch.no_grad():
        ours.classifier.weight.normal_()
    hf = HFViT(vit_config_to_hf(CONFIG)).eval()
    hf.load_state_dict(vit_to_hf(ours))  # strict: every name and shape
    x = torch.rand(2, 3, 8, 16)
    with torch.no_grad():
        torch.testing.assert_close(hf(pixel_values=x).logits, ours(x), atol=1e-5, rtol=1e-5)
    back = vit_from_hf(hf)
    for k, v in ours.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    assert vit_config_from_hf(vit_config_to_hf(CONFIG)) == CONFIG


def test_square_images_and_gradients_match():
    config = ViTConfig(image_height=8, image_width=8, patch_size=2, channels=1, d_model=16, n_layers=1,
                       n_heads=2, num_labels=3)
    hf = _hf(config, seed=2)
    ours = vit_from_hf(hf)
    x = torch.rand(4, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 1])
    torch.nn.functional.cross_entropy(hf(pixel_values=x).logits, y).backward()
    torch.nn.functional.cross_entropy(ours(x), y).backward()
    g_theirs = hf.vit.embeddings.patch_embeddings.projection.weight.grad.reshape(16, -1)
    torch.testing.assert_close(ours.vit.patch_embed.weight.grad, g_theirs, atol=1e-5, rtol=1e-4)


def test_attention_maps_are_distributions_over_tokens():
    model = ViTForImageClassification(CONFIG).eval()
    maps = model.vit.attention_maps(torch.rand(2, 3, 8, 16))
    assert len(maps) == 2 and maps[0].shape == (2, 4, 9, 9)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(2, 4, 9))


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="patch_size"):
        ViTConfig(image_height=8, image_width=8, patch_size=3)
    with pytest.raises(ValueError, match="d_model"):
        ViTConfig(d_model=0)
    with pytest.raises(ValueError, match=r"images: expected \(batch, 3, 8, 16\)"):
        ViTForImageClassification(CONFIG)(torch.rand(2, 1, 8, 16))
    with pytest.raises(TypeError, match="model"):
        vit_to_hf(torch.nn.Linear(2, 2))
    bad = vit_config_to_hf(CONFIG)
    bad.hidden_act = "relu"
    with pytest.raises(ValueError, match="hidden_act"):
        vit_config_from_hf(bad)
