"""Positional encodings against transformers (Llama RoPE, BLOOM ALiBi, T5 buckets) plus properties."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig, T5Config
from transformers.models.bloom.modeling_bloom import build_alibi_tensor
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
from transformers.models.t5.modeling_t5 import T5Attention

from roadmap_lib.positional import (
    LearnedPositionalEmbedding,
    RoPEConfig,
    RotaryEmbedding,
    ShawRelativePosition,
    SinusoidalPositionalEncoding,
    T5RelativePositionBias,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    interleaved_to_half_permutation,
    permute_qk_weight,
    rope_cos_sin,
    shaw_attention,
    sinusoidal_encoding,
    t5_relative_position_bucket,
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
        (lambda: RoPEConfig(8, scaling="yarn"), r"scaling: expected one of .*got 'yarn'"),
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


# --- Chapter 03's experiment model -------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["nope", "sinusoidal", "learned", "shaw", "t5", "rope", "alibi"])
def test_poslm_every_scheme_runs_and_is_causal(scheme):
    from roadmap_lib.pos_experiment import PosLM, PosLMConfig

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
    from roadmap_lib.pos_experiment import PosLM, PosLMConfig

    torch.manual_seed(0)
    idx = torch.tensor([[1, 2, 3, 4, 5, 6]])
    swapped = torch.tensor([[2, 1, 3, 4, 5, 6]])  # the last position sees the same set of tokens
    with torch.no_grad():
        # one layer: the last query attends over the set of token vectors, whatever their order
        nope = PosLM(PosLMConfig(vocab_size=8, scheme="nope", n_layers=1)).eval()
        torch.testing.assert_close(nope(idx)[:, -1], nope(swapped)[:, -1])
        rope = PosLM(PosLMConfig(vocab_size=8, scheme="rope", n_layers=1)).eval()
        assert not torch.allclose(rope(idx)[:, -1], rope(swapped)[:, -1], atol=1e-6)
