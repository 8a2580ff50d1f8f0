"""YaRN in :mod:`roadmap_lib.rope` against transformers' ``ROPE_INIT_FUNCTIONS["yarn"]``."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from roadmap_lib.rope import (
    RoPEConfig,
    RotaryEmbedding,
    rope_cos_sin,
    rope_inv_freq,
    yarn_attention_factor,
    yarn_inv_freq,
)


def _hf_config(head_dim, base, factor, orig, **extra):
    return LlamaConfig(
        hidden_size=4 * head_dim, num_attention_heads=4, head_dim=head_dim,
        max_position_embeddings=int(orig * factor),
        rope_parameters={"rope_type": "yarn", "rope_theta": base, "factor": factor,
                         "original_max_position_embeddings": orig, **extra},
    )


@pytest.mark.parametrize("head_dim", [16, 64, 128])
@pytest.mark.parametrize("factor", [2.0, 4.0, 16.0])
@pytest.mark.parametrize("base,orig", [(10000.0, 64), (500000.0, 4096), (100.0, 32)])
def test_yarn_inv_freq_and_attention_factor_match_transformers(head_dim, factor, base, orig):
    hf_inv, hf_att = ROPE_INIT_FUNCTIONS["yarn"](_hf_config(head_dim, base, factor, orig), "cpu")
    torch.testing.assert_close(yarn_inv_freq(head_dim, base, factor, orig), hf_inv, rtol=1e-6, atol=0)
    assert yarn_attention_factor(factor) == pytest.approx(hf_att, rel=1e-12)


def test_yarn_beta_options_match_transformers():
    cfg = _hf_config(64, 10000.0, 8.0, 128, beta_fast=16, beta_slow=2)
    hf_inv, _ = ROPE_INIT_FUNCTIONS["yarn"](cfg, "cpu")
    ours = yarn_inv_freq(64, 10000.0, 8.0, 128, beta_fast=16, beta_slow=2)
    torch.testing.assert_close(ours, hf_inv, rtol=1e-6, atol=0)


def test_yarn_cos_sin_and_rotation_match_llama_rotary_embedding():
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    hf = LlamaRotaryEmbedding(_hf_config(32, 10000.0, 4.0, 64))
    ours = RoPEConfig(32, scaling="yarn", factor=4.0, original_max_position=64)
    positions = torch.arange(256).repeat(2, 1)
    q, k = torch.randn(2, 4, 256, 32), torch.randn(2, 4, 256, 32)
    cos_hf, sin_hf = hf(q, positions)
    cos, sin = rope_cos_sin(positions, ours)
    torch.testing.assert_close(cos, cos_hf, atol=1e-5, rtol=0)
    torch.testing.assert_close(sin, sin_hf, atol=1e-5, rtol=0)
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos_hf, sin_hf)
    q_us, k_us = RotaryEmbedding(ours)(q, k, positions)
    torch.testing.assert_close(q_us, q_hf, atol=1e-5, rtol=0)
    torch.testing.assert_close(k_us, k_hf, atol=1e-5, rtol=0)


@settings(max_examples=40, deadline=None)
@given(dim=st.sampled_from([8, 16, 32, 64]), factor=st.floats(1.5, 32.0),
       orig=st.integers(16, 8192), base=st.floats(100.0, 1e6))
def test_yarn_speeds_lie_between_interpolation_and_the_original(dim, factor, orig, base):
    inv = rope_inv_freq(dim, base)
    y = yarn_inv_freq(dim, base, factor, orig)
    assert torch.all(y <= inv * (1 + 1e-6)) and torch.all(y >= inv / factor * (1 - 1e-6))
    # the fastest pair turns more than 32 times over any trained length >= 16 at these bases: kept
    turns_fastest = orig * inv[0].item() / (2 * math.pi)
    if turns_fastest > 64:
        assert y[0].item() == pytest.approx(inv[0].item(), rel=1e-6)


def test_yarn_config_needs_the_trained_length():
    with pytest.raises(ValueError, match="original_max_position"):
        RoPEConfig(16, scaling="yarn", factor=4.0)
    with pytest.raises(ValueError, match="original_max_position"):
        yarn_inv_freq(16, 10000.0, 4.0, 0)


def test_yarn_attention_factor_values():
    assert yarn_attention_factor(1.0) == 1.0
    assert yarn_attention_factor(math.e) == pytest.approx(1.1)
