"""roadmap_lib.layers against torch.nn.LayerNorm, torch.nn.RMSNorm and torch's activations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.attention import KVCache, padding_mask
from roadmap_lib.layers import (
    BlockConfig,
    DecoderBlock,
    EncoderBlock,
    FeedForward,
    LayerNorm,
    RMSNorm,
    TransformerBlock,
    geglu,
    gelu,
    gelu_tanh,
    relu,
    silu,
    swiglu,
)

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def randomize_(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_matches_torch(dtype, bias):
    ours = randomize_(LayerNorm(24, eps=1e-6, bias=bias).to(dtype))
    ref = torch.nn.LayerNorm(24, eps=1e-6, bias=bias, dtype=dtype)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 5, 24, dtype=dtype) * 3 + 1
    assert (ours(x) - ref(x)).abs().max() <= TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [None, 1e-6])
def test_rmsnorm_matches_torch(dtype, eps):
    ours = randomize_(RMSNorm(24, eps=eps).to(dtype))
    ref = torch.nn.RMSNorm(24, eps=eps, dtype=dtype)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 5, 24, dtype=dtype) * 3
    assert (ours(x) - ref(x)).abs().max() <= TOL[dtype]


def test_rmsnorm_half_precision_is_computed_in_float32():
    x = torch.randn(4, 64) * 100
    out = RMSNorm(64, eps=1e-6).to(torch.bfloat16)(x.bfloat16())
    assert out.dtype == torch.bfloat16
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert (out.float() - expected).abs().max() < 0.02


def test_rmsnorm_differs_from_layernorm_only_by_centring():
    x = torch.randn(8, 32)
    x = x - x.mean(-1, keepdim=True)  # centred input: the two norms agree (eps aside)
    torch.testing.assert_close(RMSNorm(32, 1e-5)(x), LayerNorm(32, 1e-5)(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_match_torch(dtype):
    x = torch.linspace(-8, 8, 2001, dtype=dtype)
    tol = TOL[dtype]
    assert (relu(x) - F.relu(x)).abs().max() <= tol
    assert (gelu(x) - F.gelu(x)).abs().max() <= tol
    assert (gelu_tanh(x) - F.gelu(x, approximate="tanh")).abs().max() <= tol
    assert (silu(x) - F.silu(x)).abs().max() <= tol
    # the tanh approximation is close but not equal to the exact GELU
    assert 1e-4 < (gelu_tanh(x) - gelu(x)).abs().max() < 1e-2
    y = torch.randn(4, 10, dtype=dtype)
    a, b = y.chunk(2, -1)
    assert (swiglu(y) - F.silu(a) * b).abs().max() <= tol
    assert (geglu(y) - F.gelu(a) * b).abs().max() <= tol
    with pytest.raises(ValueError, match="even last dimension, got 3"):
        swiglu(torch.randn(2, 3))
    with pytest.raises(ValueError, match="approximate"):
        gelu(x, approximate="erf")


def test_feedforward_gated_and_plain():
    torch.manual_seed(0)
    ff = FeedForward(16, 40, "swiglu", bias=False)
    assert ff.gate_proj is not None and ff.up_proj.bias is None
    x = torch.randn(2, 3, 16)
    expected = ff.down_proj(F.silu(ff.gate_proj(x)) * ff.up_proj(x))
    torch.testing.assert_close(ff(x), expected)
    ff = FeedForward(16, 64, "relu")
    torch.testing.assert_close(ff(x), ff.down_proj(F.relu(ff.up_proj(x))))
    assert FeedForward(16, 40, "geglu").gate_proj is not None
    with pytest.raises(ValueError, match=r"activation: expected one of .* got 'tanh'"):
        FeedForward(16, 40, "tanh")


def test_pre_and_post_norm_residual_structure():
    torch.manual_seed(0)
    cfg = BlockConfig(d_model=16, n_heads=2, d_ff=32)
    x = torch.randn(2, 5, 16)
    pre = TransformerBlock(cfg).eval()
    h = x + pre.attn(pre.attn_norm(x))
    torch.testing.assert_close(pre(x), h + pre.ffn(pre.ffn_norm(h)))
    post = TransformerBlock(BlockConfig(d_model=16, n_heads=2, d_ff=32, prenorm=False)).eval()
    h = post.attn_norm(x + post.attn(x))
    out = post(x)
    torch.testing.assert_close(out, post.ffn_norm(h + post.ffn(h)))
    # a post-norm block's output is normalised: zero mean, unit variance per position
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)


def test_encoder_and_decoder_blocks():
    torch.manual_seed(0)
    cfg = BlockConfig(d_model=16, n_heads=4, n_kv_heads=2, activation="swiglu", norm="rmsnorm")
    enc, dec = EncoderBlock(cfg).eval(), DecoderBlock(cfg).eval()
    assert not enc.config.causal and dec.config.causal and dec.config.cross_attention
    src, tgt = torch.randn(2, 7, 16), torch.randn(2, 5, 16)
    src_pad = padding_mask(torch.tensor([7, 4]))
    memory = enc(src, key_padding_mask=src_pad)
    out = dec(tgt, memory, context_padding_mask=src_pad)
    assert out.shape == (2, 5, 16)
    # padding keys are ignored: changing them does not change the decoder output
    memory2 = memory.clone()
    memory2[1, 4:] = torch.randn(3, 16)
    torch.testing.assert_close(dec(tgt, memory2, context_padding_mask=src_pad), out)
    # incremental decoding with a self-attention cache and a cross-attention cache
    cache, cross = KVCache(), KVCache()
    steps = [dec(tgt[:, t:t + 1], memory, context_padding_mask=src_pad, cache=cache,
                 cross_cache=cross) for t in range(5)]
    torch.testing.assert_close(torch.cat(steps, 1), out, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="context: this block has cross-attention"):
        dec(tgt)
    with pytest.raises(ValueError, match="context: this block has no cross-attention"):
        enc(src, memory)
    with pytest.raises(ValueError, match="norm: expected 'layernorm' or 'rmsnorm', got 'batch'"):
        BlockConfig(d_model=16, n_heads=2, norm="batch")


@settings(max_examples=10, deadline=None)
@given(n=st.integers(2, 8), seed=st.integers(0, 99), prenorm=st.booleans())
def test_causal_block_ignores_future_tokens(n, seed, prenorm):
    torch.manual_seed(seed)
    block = TransformerBlock(BlockConfig(d_model=16, n_heads=2, causal=True, prenorm=prenorm))
    block.eval()
    x = torch.randn(1, n, 16)
    y = x.clone()
    y[:, -1] += 1.0
    torch.testing.assert_close(block(x)[:, :-1], block(y)[:, :-1], atol=1e-6, rtol=0)
