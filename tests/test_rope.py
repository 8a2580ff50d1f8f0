"""RoPE (roadmap_lib.rope) against transformers' Llama rotary code, plus its properties: scores
depend only on relative position, both pair conventions agree, scaling does what it says."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from roadmap_lib.rope import (
    RoPEConfig,
    RotaryEmbedding,
    apply_rope,
    interleaved_to_half_permutation,
    permute_qk_weight,
    rope_cos_sin,
)

HYP = settings(max_examples=25, deadline=None)


# --- RoPE against transformers' Llama --------------------------------------------------------------


def _llama_rope(head_dim, rope_parameters, max_pos=64):
    config = LlamaConfig(
        hidden_size=4 * head_dim,
        num_attention_heads=4,
        head_dim=head_dim,
        max_position_embeddings=max_pos,
        rope_parameters=rope_parameters,
    )
    return LlamaRotaryEmbedding(config)


@pytest.mark.parametrize(
    "scaling",
    [
        None,
        {"rope_type": "linear", "factor": 4.0},
        {"rope_type": "dynamic", "factor": 2.0},
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
    ],
)
@pytest.mark.parametrize("head_dim", [16, 64])
def test_rope_matches_llama(scaling, head_dim):
    torch.manual_seed(0)
    params = (
        {"rope_type": "default", "rope_theta": 500.0}
        if scaling is None
        else {"rope_theta": 500.0, **scaling}
    )
    hf = _llama_rope(head_dim, params)
    ours = {
        None: RoPEConfig(head_dim, base=500.0),
        "linear": RoPEConfig(head_dim, base=500.0, scaling="linear", factor=4.0),
        "dynamic": RoPEConfig(
            head_dim, base=500.0, scaling="dynamic_ntk", factor=2.0, original_max_position=64
        ),
        "llama3": RoPEConfig(
            head_dim, base=500.0, scaling="llama3", factor=8.0, original_max_position=64
        ),
    }[None if scaling is None else scaling["rope_type"]]
    positions = torch.arange(200).repeat(
        2, 1
    )  # past max_position_embeddings: dynamic scaling kicks in
    q, k = torch.randn(2, 4, 200, head_dim), torch.randn(2, 4, 200, head_dim)
    cos_hf, sin_hf = hf(q, positions)
    cos, sin = rope_cos_sin(positions, ours)
    torch.testing.assert_close(cos, cos_hf, atol=1e-5, rtol=0)
    torch.testing.assert_close(sin, sin_hf, atol=1e-5, rtol=0)
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos_hf, sin_hf)
    q_us, k_us = RotaryEmbedding(ours)(q, k, positions)
    assert (q_us - q_hf).abs().max() <= 1e-5 and (k_us - k_hf).abs().max() <= 1e-5


def test_rope_partial_rotary_leaves_the_rest():
    x = torch.randn(1, 2, 5, 12)
    cos, sin = rope_cos_sin(torch.arange(5), RoPEConfig(8))
    out = apply_rope(x, cos, sin)
    assert torch.equal(out[..., 8:], x[..., 8:]) and not torch.allclose(out[..., :8], x[..., :8])


def _scores(q, k, config, qpos, kpos):
    qc, qs = rope_cos_sin(qpos, config)
    kc, ks = rope_cos_sin(kpos, config)
    return apply_rope(q, qc, qs, config.convention) @ apply_rope(
        k, kc, ks, config.convention
    ).transpose(-1, -2)


@HYP
@given(
    st.sampled_from(["half", "interleaved"]),
    st.integers(0, 500),
    st.integers(0, 500),
    st.integers(0, 3000),
    st.sampled_from([2, 8, 32]),
)
def test_rope_scores_depend_only_on_relative_position(convention, m, n, shift, dim):
    g = torch.Generator().manual_seed(m * 7 + n)
    q, k = (
        torch.randn(1, 1, 1, dim, generator=g, dtype=torch.float64),
        torch.randn(1, 1, 1, dim, generator=g, dtype=torch.float64),
    )
    config = RoPEConfig(dim, convention=convention)
    a = _scores(q, k, config, torch.tensor([m]), torch.tensor([n]))
    b = _scores(q, k, config, torch.tensor([m + shift]), torch.tensor([n + shift]))
    # float32 angles at positions ~3500: rounding of m·θ is ~1e-4 rad
    assert torch.allclose(a, b, atol=2e-3 * dim, rtol=1e-3)


def test_rope_rotation_preserves_norm_and_differs_from_identity():
    q = torch.randn(2, 3, 10, 16)
    cos, sin = rope_cos_sin(torch.arange(10), RoPEConfig(16, convention="interleaved"))
    out = apply_rope(q, cos, sin, "interleaved")
    torch.testing.assert_close(out.norm(dim=-1), q.norm(dim=-1))
    assert torch.equal(out[:, :, 0], q[:, :, 0]) and not torch.allclose(out[:, :, 1:], q[:, :, 1:])


@HYP
@given(st.integers(1, 4), st.sampled_from([2, 4, 16]), st.integers(0, 2**31 - 1))
def test_interleaved_and_half_give_identical_scores(num_heads, head_dim, seed):
    g = torch.Generator().manual_seed(seed)
    d_model, L = 8, 7
    w_q, w_k = (
        torch.randn(num_heads * head_dim, d_model, generator=g),
        torch.randn(num_heads * head_dim, d_model, generator=g),
    )
    x = torch.randn(2, L, d_model, generator=g)
    pos = torch.arange(L)

    def scores(wq, wk, convention):
        q = (x @ wq.T).view(2, L, num_heads, head_dim).transpose(1, 2)
        k = (x @ wk.T).view(2, L, num_heads, head_dim).transpose(1, 2)
        q, k = RotaryEmbedding(RoPEConfig(head_dim, convention=convention))(q, k, pos)
        return q @ k.transpose(-1, -2)

    inter = scores(w_q, w_k, "interleaved")
    half = scores(
        permute_qk_weight(w_q, num_heads, "half"), permute_qk_weight(w_k, num_heads, "half"), "half"
    )
    torch.testing.assert_close(half, inter, atol=1e-4, rtol=1e-4)
    back = permute_qk_weight(permute_qk_weight(w_q, num_heads, "half"), num_heads, "interleaved")
    assert torch.equal(back, w_q)
    if head_dim > 2:  # the permutation is needed: without it the scores differ
        assert not torch.allclose(scores(w_q, w_k, "half"), inter, atol=1e-3)


def test_permutation_maps_pairs():
    p = interleaved_to_half_permutation(8)
    assert p.tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    x = torch.randn(1, 1, 4, 8)
    ci, si = rope_cos_sin(torch.arange(4), RoPEConfig(8, convention="interleaved"))
    ch, sh = rope_cos_sin(torch.arange(4), RoPEConfig(8, convention="half"))
    torch.testing.assert_close(
        apply_rope(x[..., p], ch, sh, "half"), apply_rope(x, ci, si, "interleaved")[..., p]
    )


def test_linear_scaling_is_position_interpolation_and_ntk_keeps_fast_pairs():
    pi = rope_cos_sin(torch.arange(40), RoPEConfig(16, scaling="linear", factor=4.0))
    plain = rope_cos_sin(torch.arange(0, 40) / 4.0, RoPEConfig(16))
    torch.testing.assert_close(pi, plain)
    from roadmap_lib.positional import rope_angles

    a = rope_angles(torch.tensor([100]), RoPEConfig(16))[0]
    b = rope_angles(torch.tensor([100]), RoPEConfig(16, scaling="ntk", factor=4.0))[0]
    assert a[0] == b[0] and math.isclose((a[-1] / b[-1]).item(), 4.0, rel_tol=1e-4)
