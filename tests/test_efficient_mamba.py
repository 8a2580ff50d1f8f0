"""Our Mamba equals transformers' MambaForCausalLM (CPU slow path) with the same weights, both ways."""

import pytest
import torch

from roadmap_lib.efficient.mamba import MambaConfig, MambaLM, from_hf_mamba, to_hf_mamba


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    cfg = MambaConfig(vocab_size=40, d_model=32, n_layers=2, d_state=8)
    model = MambaLM(cfg).eval()
    with torch.no_grad():  # perturb every weight so no default (ones, zeros) hides a swap
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model, to_hf_mamba(model)


@pytest.mark.parametrize("scan", ["sequential", "parallel"])
def test_logits_equal_transformers(pair, scan):
    model, hf = pair
    ids = torch.randint(0, 40, (2, 37), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(ids, scan=scan), hf(ids).logits
    assert (ours - theirs).abs().max() < 1e-5


def test_conversion_round_trip(pair):
    model, hf = pair
    back = from_hf_mamba(hf)
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)
    hf2 = type(hf)(hf.config)  # fresh random weights in transformers, loaded into ours
    ids = torch.randint(0, 40, (1, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (from_hf_mamba(hf2)(ids) - hf2(ids).logits).abs().max() < 1e-5


def test_training_gradients_match_between_scans(pair):
    model, _ = pair
    ids = torch.randint(0, 40, (2, 16), generator=torch.Generator().manual_seed(3))
    grads = []
    for scan in ("sequential", "parallel"):
        model.zero_grad()
        model(ids, scan=scan).logsumexp(-1).mean().backward()
        grads.append(model.layers[0].mixer.A_log.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_bad_input():
    with pytest.raises(ValueError, match="scan"):
        MambaConfig(scan="fast")
    with pytest.raises(ValueError, match="d_state"):
        MambaConfig(d_state=0)
    with pytest.raises(ValueError, match="idx"):
        MambaLM(MambaConfig(vocab_size=10, d_model=16, n_layers=1))(torch.zeros(3, dtype=torch.long))
