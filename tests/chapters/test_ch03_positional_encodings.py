"""Chapter 03: the positional-encoding experiment model (every scheme causal, order-aware or not)."""

import pytest
import torch

from roadmap_lib.chapters.ch03_positional_encodings.extrapolation import (
    PosLM,
    PosLMConfig,
    extension,
)
from roadmap_lib.rope import RoPEConfig


@pytest.mark.parametrize("scheme", ["nope", "sinusoidal", "learned", "shaw", "t5", "rope", "alibi"])
def test_poslm_every_scheme_runs_and_is_causal(scheme):

    torch.manual_seed(0)
    model = PosLM(PosLMConfig(vocab_size=11, scheme=scheme, train_len=16)).eval()
    idx = torch.randint(0, 11, (2, 16))
    changed = idx.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 11
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert a.shape == (2, 16, 11)
    torch.testing.assert_close(a[:, :10], b[:, :10])  # later tokens never leak into earlier outputs
    if scheme == "learned":
        with pytest.raises(ValueError, match="max_len=16"):
            model(torch.zeros(1, 17, dtype=torch.long))
    else:
        assert model(torch.zeros(1, 40, dtype=torch.long)).shape == (1, 40, 11)


def test_poslm_without_positions_is_blind_to_order_but_rope_is_not():

    torch.manual_seed(0)
    idx = torch.tensor([[1, 2, 3, 4, 5, 6]])
    swapped = torch.tensor([[2, 1, 3, 4, 5, 6]])  # the last position sees the same set of tokens
    with torch.no_grad():
        # one layer: the last query attends over the set of token vectors, whatever their order
        nope = PosLM(PosLMConfig(vocab_size=8, scheme="nope", n_layers=1)).eval()
        torch.testing.assert_close(nope(idx)[:, -1], nope(swapped)[:, -1])
        rope = PosLM(PosLMConfig(vocab_size=8, scheme="rope", n_layers=1)).eval()
        assert not torch.allclose(rope(idx)[:, -1], rope(swapped)[:, -1], atol=1e-6)


def test_extension_scales_only_the_extended_rows_past_the_training_length():
    base = RoPEConfig(16)
    assert extension("rope", base, 4.0) == base
    assert extension("rope+pi", base, 1.0) == base
    assert extension("rope+pi", base, 2.0).scaling == "linear"
    assert extension("rope+ntk", base, 4.0).scaling == "ntk"


def test_kept_model_round_trips_with_its_config(tmp_path):
    from roadmap_lib.chapters.ch03_positional_encodings import extrapolation as ex

    model = PosLM(PosLMConfig(30, scheme="alibi", train_len=16))
    ex.save_trained(model, tmp_path / "m.safetensors")
    back = ex.load_trained(tmp_path / "m.safetensors")
    assert back.c.scheme == "alibi" and back.c.train_len == 16 and not back.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
    ids = torch.randint(0, 30, (2, 24))  # longer than the training length: ALiBi can take it
    assert torch.equal(model.eval()(ids), back(ids))
