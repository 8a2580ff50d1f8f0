"""Positional encodings against transformers (Llama RoPE, BLOOM ALiBi, T5 buckets) plus properties."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import T5Config
from transformers.models.bloom.modeling_bloom import build_alibi_tensor
from transformers.models.t5.modeling_t5 import T5Attention

from roadmap_lib.positional import (
    LearnedPositionalEmbedding,
    RoPEConfig,
    ShawRelativePosition,
    SinusoidalPositionalEncoding,
    T5RelativePositionBias,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    permute_qk_weight,
    rope_cos_sin,
    shaw_attention,
    sinusoidal_encoding,
    t5_relative_position_bucket,
)

HYP = settings(max_examples=25, deadline=None)


# --- Absolute --------------------------------------------------------------------------------------


@HYP
@given(st.integers(1, 300), st.sampled_from([2, 6, 64]), st.integers(0, 200))
def test_sinusoidal_bounded_and_shift_is_a_rotation(seq, d_model, shift):
    pe = sinusoidal_encoding(seq, d_model).double()
    assert pe.shape == (seq, d_model) and pe.abs().max() <= 1.0
    shifted = sinusoidal_encoding(torch.arange(shift, shift + seq), d_model).double()
    theta = shift / 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    s, c = pe[:, 0::2], pe[:, 1::2]  # sin(pθ), cos(pθ) -> sin((p+k)θ) = s cos kθ + c sin kθ
    torch.testing.assert_close(
        shifted[:, 0::2], s * theta.cos() + c * theta.sin(), atol=1e-3, rtol=0
    )


def test_sinusoidal_values_and_module():
    pe = sinusoidal_encoding(3, 4)
    expected = torch.tensor(
        [
            [0, 1, 0, 1],
            [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)],
            [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)],
        ]
    )
    torch.testing.assert_close(pe, expected)
    x = torch.zeros(2, 3, 4)
    torch.testing.assert_close(SinusoidalPositionalEncoding(4)(x), pe.expand(2, -1, -1))


def test_learned_cannot_go_past_its_table():
    emb = LearnedPositionalEmbedding(8, 4)
    assert emb(torch.zeros(1, 8, 4)).shape == (1, 8, 4)
    with pytest.raises(ValueError, match="max_len=8"):
        emb(torch.zeros(1, 9, 4))


# --- Shaw ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("is_causal", [False, True])
def test_shaw_matches_explicit_formula(is_causal):
    torch.manual_seed(0)
    B, H, L, D, K = 2, 3, 9, 8, 3
    q, k, v = (torch.randn(B, H, L, D, dtype=torch.float64) for _ in range(3))
    rel_k, rel_v = (
        torch.randn(2 * K + 1, D, dtype=torch.float64),
        torch.randn(2 * K + 1, D, dtype=torch.float64),
    )
    idx = (torch.arange(L)[None] - torch.arange(L)[:, None]).clamp(-K, K) + K
    a_k, a_v = rel_k[idx], rel_v[idx]  # (L, L, D), as in the paper
    logits = (
        torch.einsum("bhid,bhjd->bhij", q, k) + torch.einsum("bhid,ijd->bhij", q, a_k)
    ) / math.sqrt(D)
    if is_causal:
        logits = logits.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))
    w = logits.softmax(-1)
    expected = w @ v + torch.einsum("bhij,ijd->bhid", w, a_v)
    torch.testing.assert_close(shaw_attention(q, k, v, rel_k, rel_v, is_causal=is_causal), expected)
    module = ShawRelativePosition(D, K).double()
    assert module(q, k, v).shape == (B, H, L, D)


def test_shaw_reduces_to_plain_attention_with_zero_tables():
    q, k, v = (torch.randn(1, 2, 6, 4) for _ in range(3))
    zeros = torch.zeros(5, 4)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(shaw_attention(q, k, v, zeros, zeros, is_causal=True), expected)


# --- T5 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("is_decoder", [False, True])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, 20), (6, 7)])
def test_t5_buckets_and_bias_match_transformers(is_decoder, num_buckets, max_distance):
    torch.manual_seed(0)
    config = T5Config(
        d_model=16,
        d_kv=4,
        num_heads=4,
        relative_attention_num_buckets=num_buckets,
        relative_attention_max_distance=max_distance,
        is_decoder=is_decoder,
    )
    hf = T5Attention(config, has_relative_attention_bias=True)
    rel = torch.arange(-300, 301)
    expected = T5Attention._relative_position_bucket(rel, not is_decoder, num_buckets, max_distance)
    assert torch.equal(
        t5_relative_position_bucket(rel, not is_decoder, num_buckets, max_distance), expected
    )
    ours = T5RelativePositionBias(4, num_buckets, max_distance, bidirectional=not is_decoder)
    ours.relative_attention_bias.weight.data.copy_(hf.relative_attention_bias.weight.data)
    for q_len, k_len, past in [(10, 10, 0), (1, 40, 39), (5, 300, 200)]:
        torch.testing.assert_close(
            ours(q_len, k_len, past), hf.compute_bias(q_len, k_len, past_seen_tokens=past)
        )


# --- ALiBi -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_heads", [1, 2, 3, 5, 6, 8, 12, 16, 24, 31])
def test_alibi_matches_bloom(num_heads):
    L = 11
    bloom = build_alibi_tensor(torch.ones(1, L, dtype=torch.long), num_heads, torch.float32).view(
        num_heads, 1, L
    )
    slopes = alibi_slopes(num_heads)
    torch.testing.assert_close(slopes, bloom[:, 0, 1], rtol=1e-6, atol=0)
    ours = alibi_bias(num_heads, L)[0]
    # BLOOM adds slope·key; we add -slope·(query - key) on the causal part: same up to a per-row constant
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    shifted = ours + slopes[:, None, None] * torch.arange(L)[None, :, None]
    torch.testing.assert_close(
        shifted[:, causal], bloom.expand(-1, L, -1)[:, causal], atol=1e-5, rtol=0
    )
    logits = torch.randn(num_heads, L, L).masked_fill(~causal, float("-inf"))
    torch.testing.assert_close(
        (logits + ours).softmax(-1), (logits + bloom).softmax(-1), atol=1e-6, rtol=1e-5
    )


@HYP
@given(st.integers(1, 64))
def test_alibi_slopes_geometric(num_heads):
    s = alibi_slopes(num_heads).double()
    assert s.shape == (num_heads,) and (s > 0).all() and (s < 1).all()
    assert len(set(s.tolist())) == num_heads
    m = 2 ** int(math.log2(num_heads))
    ratios = s[1:m] / s[: m - 1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 2 ** (-8 / m)))
    torch.testing.assert_close(s[0], torch.tensor(2 ** (-8 / m), dtype=torch.float64))


def test_alibi_bias_is_zero_on_diagonal_and_decreasing():
    b = alibi_bias(4, 6)[0]
    assert b.shape == (4, 6, 6) and torch.equal(
        torch.diagonal(b, dim1=-2, dim2=-1), torch.zeros(4, 6)
    )
    assert (b[:, 5, 1:] > b[:, 5, :-1]).all()


# --- Bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: RoPEConfig(7), r"dim: .*even.*got 7"),
        (lambda: RoPEConfig(8, convention="gptj"), r"convention: expected one of .*got 'gptj'"),
        (lambda: RoPEConfig(8, scaling="longrope"), r"scaling: expected one of .*got 'longrope'"),
        (lambda: RoPEConfig(8, scaling="linear", factor=0.5), r"factor: expected .*>= 1, got 0.5"),
        (lambda: RoPEConfig(8, scaling="llama3", factor=4.0), r"original_max_position: .*got None"),
        (
            lambda: apply_rope(torch.randn(2, 5, 8), *rope_cos_sin(torch.arange(5), RoPEConfig(8))),
            r"x: expected shape",
        ),
        (
            lambda: apply_rope(
                torch.randn(1, 1, 6, 8), *rope_cos_sin(torch.arange(5), RoPEConfig(8))
            ),
            r"cos: .*seq=6.*got \(5, 8\)",
        ),
        (
            lambda: apply_rope(
                torch.randn(1, 1, 5, 4), *rope_cos_sin(torch.arange(5), RoPEConfig(8))
            ),
            r"cos: .*<= head dim 4, got 8",
        ),
        (
            lambda: permute_qk_weight(torch.randn(12, 4), 5),
            r"num_heads: .*weight.shape\[0\]=12, got 5",
        ),
        (
            lambda: permute_qk_weight(torch.randn(12, 4), 4),
            r"weight \(rows per head\): .*even.*got 3",
        ),
        (lambda: sinusoidal_encoding(4, 5), r"d_model: expected an even number.*got 5"),
        (lambda: LearnedPositionalEmbedding(0, 4), r"max_len: expected an int >= 1, got 0"),
        (
            lambda: shaw_attention(*(torch.randn(1, 1, 4, 8) for _ in range(3)), torch.randn(4, 8)),
            r"rel_k: expected shape \(2K\+1, 8\), got \(4, 8\)",
        ),
        (
            lambda: shaw_attention(
                torch.randn(1, 1, 4, 8),
                torch.randn(1, 1, 4, 6),
                torch.randn(1, 1, 4, 8),
                torch.randn(5, 8),
            ),
            r"k: expected head dim 8.*got 6",
        ),
        (
            lambda: t5_relative_position_bucket(torch.arange(4), num_buckets=32, max_distance=8),
            r"max_distance: .*8 exact buckets, got 8",
        ),
        (lambda: alibi_slopes(0), r"num_heads: expected an int >= 1, got 0"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="num_heads: expected an int, got float"):
        alibi_slopes(4.0)
    with pytest.raises(TypeError, match="dim: expected an int, got float"):
        RoPEConfig(8.0)
    with pytest.raises(
        TypeError, match="relative_position: expected an integer tensor, got torch.float32"
    ):
        t5_relative_position_bucket(torch.arange(4.0))


