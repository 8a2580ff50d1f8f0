"""The CLIP-style dual encoder: its loss against transformers', retrieval recall, shapes, errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.clip.modeling_clip import image_text_contrastive_loss

from roadmap_lib.models.clip import CLIP, CLIPConfig, TextConfig, clip_loss, recall_at_k
from roadmap_lib.models.vit import ViTConfig


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 1000), scale=st.floats(0.1, 50.0))
def test_loss_equals_transformers(n, seed, scale):
    logits = scale * torch.randn(n, n, generator=torch.Generator().manual_seed(seed))
    # transformers passes logits_per_text; the loss is symmetric in the transpose
    torch.testing.assert_close(clip_loss(logits), image_text_contrastive_loss(logits.T))


def test_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
    rows = -(torch.log_softmax(logits, 1)[0, 0] + torch.log_softmax(logits, 1)[1, 1]) / 2
    cols = -(torch.log_softmax(logits, 0)[0, 0] + torch.log_softmax(logits, 0)[1, 1]) / 2
    torch.testing.assert_close(clip_loss(logits), (rows + cols) / 2)


def test_recall_at_k():
    s = torch.tensor([[3.0, 1.0, 2.0], [5.0, 4.0, 0.0], [1.0, 1.0, 1.0]])
    # row 0: match ranked 1st; row 1: 2nd; row 2: tied with two others, counted as 3rd
    assert recall_at_k(s, 1) == pytest.approx(1 / 3)
    assert recall_at_k(s, 2) == pytest.approx(2 / 3)
    assert recall_at_k(s, 3) == 1.0


def _tiny():
    torch.manual_seed(0)
    return CLIP(CLIPConfig(vision=ViTConfig(image_height=8, image_width=16, patch_size=4, channels=3, d_model=16,
                                            n_layers=1, n_heads=2, num_labels=1),
                           text=TextConfig(vocab_size=10, context_length=6, d_model=16, n_layers=1, n_heads=2),
                           embed_dim=8))


def test_embeddings_are_unit_vectors_and_logits_scaled():
    model = _tiny().eval()
    images, ids = torch.rand(3, 3, 8, 16), torch.randint(0, 10, (3, 6))
    u, v = model.encode_image(images), model.encode_text(ids)
    torch.testing.assert_close(u.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(model(images, ids), model.scale() * u @ v.T)
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)


def test_text_tower_is_causal():
    """The pooled end-of-text vector may depend on every token; the first position only on itself."""
    model = _tiny().eval()
    ids = torch.randint(0, 10, (1, 6))
    changed = ids.clone()
    changed[0, 5] = (ids[0, 5] + 1) % 10
    h, h2 = model.text(ids), model.text(changed)
    torch.testing.assert_close(h[:, :5], h2[:, :5])
    assert not torch.allclose(h[:, 5], h2[:, 5])


def test_a_few_steps_lower_the_loss():
    """Eight pairs (each image one random colour, each caption random ids) are memorised."""
    model = _tiny()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 1, 1, generator=g).expand(8, 3, 8, 16).contiguous()
    ids = torch.randint(0, 10, (8, 6), generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = clip_loss(model(images, ids)).item()
    for _ in range(40):
        loss = clip_loss(model(images, ids))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first  # measured: 3.17 -> 0.65


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="logits_per_image"):
        clip_loss(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="k: expected"):
        recall_at_k(torch.zeros(2, 2), 0)
    with pytest.raises(ValueError, match="ids"):
        _tiny().encode_text(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="at most 6 tokens"):
        _tiny().encode_text(torch.zeros(2, 7, dtype=torch.long))
