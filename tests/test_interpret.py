"""roadmap_lib.interpret on a tiny random GPT: patching identities, logit lens, attention maps vs
transformers' GPT-2 (output_attentions), probes, and errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib import interpret as T
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.models.hf import gpt_to_hf


def _model(seed=0, layers=2):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=31, context_length=16, d_model=32, n_layers=layers, n_heads=4)).eval()


def _ids(seed, batch=3, L=10):
    return torch.randint(0, 31, (batch, L), generator=torch.Generator().manual_seed(seed))


def test_residual_states_and_logit_lens_end_at_the_logits():
    model, ids = _model(), _ids(0)
    states = T.residual_states(model, ids)
    assert states.shape == (3, 3, 10, 32)
    torch.testing.assert_close(states[0], model.wte(ids) + model.wpe(torch.arange(10)))
    lens = T.logit_lens(model, ids)
    torch.testing.assert_close(lens[-1], model(ids))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000))
def test_patching_a_run_with_itself_changes_nothing(seed):
    model, ids = _model(), _ids(seed)
    states = T.residual_states(model, ids)
    mask = torch.rand(3, 10, generator=torch.Generator().manual_seed(seed)) < 0.5
    torch.testing.assert_close(T.run_with_patch(model, ids, states, mask), model(ids), rtol=0, atol=0)


@pytest.mark.parametrize("state", [0, 1, 2])
def test_patching_every_position_recovers_the_source_run_exactly(state):
    model, clean, corrupt = _model(), _ids(1), _ids(2)
    mask = torch.zeros(3, 10, dtype=torch.bool)
    mask[state] = True
    got = T.run_with_patch(model, corrupt, T.residual_states(model, clean), mask)
    assert torch.equal(got, model(clean))


def test_patching_effect_of_a_causal_model():
    """Patching a position after the metric's position cannot change it (causal mask); patching
    the embedding where clean and corrupt differ is the only early change that matters."""
    model = _model()
    clean = _ids(3, batch=2, L=8)
    corrupt = clean.clone()
    corrupt[:, 2] = (corrupt[:, 2] + 1) % 31
    eff = T.patching_effect(model, clean, corrupt, lambda lg: float(lg[:, 5].sum()))
    with torch.no_grad():
        base, want = float(model(corrupt)[:, 5].sum()), float(model(clean)[:, 5].sum())
    assert eff.shape == (3, 8)
    torch.testing.assert_close(eff[:, 6:], torch.full((3, 2), base))
    torch.testing.assert_close(eff[0, [0, 1, 3, 4, 5]], torch.full((5,), base))
    assert abs(float(eff[0, 2]) - want) < 1e-4


@pytest.mark.slow
def test_attention_maps_match_transformers_gpt2():
    """Slow only because importing transformers takes seconds; the model is tiny."""
    model, ids = _model(seed=4), _ids(4)
    hf = gpt_to_hf(model).eval()
    hf.set_attn_implementation("eager")  # the only one that returns the weights
    want = torch.stack(hf(ids, output_attentions=True).attentions)
    got = T.attention_maps(model, ids)
    assert got.shape == (2, 3, 4, 10, 10)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.sum(-1), torch.ones(2, 3, 4, 10))
    assert got.triu(1).abs().max() == 0


def test_recovered_fraction_and_probe():
    assert T.recovered_fraction(torch.tensor([-5.0, -1.0, 0.0]), 0.0, -5.0).tolist() == pytest.approx([0.0, 0.8, 1.0])
    with pytest.raises(ValueError, match="clean: equals corrupt"):
        T.recovered_fraction(1.0, 2.0, 2.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] > 0).long()
    assert T.probe_accuracy(x[:150], y[:150], x[150:], y[150:]) > 0.95
    noise = torch.randint(0, 2, (200,), generator=g)
    assert T.probe_accuracy(x[:150], noise[:150], x[150:], noise[150:]) < 0.75
    with pytest.raises(ValueError, match="train_x, train_y: expected \\(n, d\\) features"):
        T.probe_accuracy(x[:10], y[:9], x, y)


def test_clear_errors():
    model, ids = _model(), _ids(0)
    with pytest.raises(TypeError, match="model: expected a GPT-like model"):
        T.attention_maps(torch.nn.Linear(2, 2), ids)
    with pytest.raises(ValueError, match="ids: expected a \\(batch, seq\\) integer tensor, got shape \\(10,\\)"):
        T.residual_states(model, ids[0])
    states = T.residual_states(model, ids)
    with pytest.raises(ValueError, match="mask: expected a \\(3, 10\\) bool tensor"):
        T.run_with_patch(model, ids, states, torch.zeros(3, 10))
    with pytest.raises(ValueError, match="source_states: expected shape"):
        T.run_with_patch(model, ids, states[:2], torch.zeros(3, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="corrupt_ids: expected the shape of clean_ids"):
        T.patching_effect(model, ids, ids[:, :5], lambda lg: 0.0)
