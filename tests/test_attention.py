"""roadmap_lib.attention against torch's scaled_dot_product_attention and nn.MultiheadAttention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.attention import (
    AttentionConfig,
    KVCache,
    MultiHeadAttention,
    causal_mask,
    mask_to_bias,
    padding_mask,
    scaled_dot_product_attention,
    sliding_window_mask,
)

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def qkv(b=2, h=4, kvh=4, lq=5, lk=7, d=8, dv=None, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, lq, d, generator=g, dtype=dtype)
    k = torch.randn(b, kvh, lk, d, generator=g, dtype=dtype)
    v = torch.randn(b, kvh, lk, dv or d, generator=g, dtype=dtype)
    return q, k, v


def close(a, b, dtype):
    diff = (a - b).abs().max().item()
    assert diff <= TOL[dtype], f"max abs diff {diff:.3g} > {TOL[dtype]}"


# ------------------------------------------------------------------ against torch's SDPA


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kind", ["none", "bool_full", "bool_2d", "bool_batch", "float_full", "float_2d", "scale", "dv"]
)
def test_sdpa_matches_torch(kind, dtype):
    q, k, v = qkv(dtype=dtype, dv=6 if kind == "dv" else None)
    g = torch.Generator().manual_seed(1)
    kwargs = {}
    if kind == "bool_full":
        kwargs["attn_mask"] = torch.rand(2, 4, 5, 7, generator=g) > 0.3
    elif kind == "bool_2d":
        kwargs["attn_mask"] = torch.rand(5, 7, generator=g) > 0.3
    elif kind == "bool_batch":
        kwargs["attn_mask"] = torch.rand(2, 1, 1, 7, generator=g) > 0.3
    elif kind == "float_full":
        kwargs["attn_mask"] = torch.randn(2, 4, 5, 7, generator=g, dtype=dtype)
    elif kind == "float_2d":
        m = torch.randn(5, 7, generator=g, dtype=dtype)
        kwargs["attn_mask"] = m.masked_fill(torch.rand(5, 7, generator=g) > 0.7, float("-inf"))
    elif kind == "scale":
        kwargs["scale"] = 0.37
    ours = scaled_dot_product_attention(q, k, v, **kwargs)
    ref = F.scaled_dot_product_attention(q, k, v, **kwargs)
    close(ours, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lq,lk", [(6, 6), (4, 9), (9, 4)])
def test_causal_matches_torch_top_left(lq, lk, dtype):
    q, k, v = qkv(lq=lq, lk=lk, dtype=dtype)
    close(
        scaled_dot_product_attention(q, k, v, is_causal=True),
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
        dtype,
    )
    # the explicit mask helper is the same thing
    close(
        scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(lq, lk)),
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_key_padding_mask_matches_torch(dtype):
    q, k, v = qkv(dtype=dtype)
    pad = padding_mask(torch.tensor([7, 4]), 7)
    assert pad.tolist()[1] == [False] * 4 + [True] * 3
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=~pad[:, None, None, :])
    close(scaled_dot_product_attention(q, k, v, key_padding_mask=pad), ref, dtype)
    # combined with causal and a boolean mask (torch needs them folded into one mask)
    extra = torch.rand(5, 7, generator=torch.Generator().manual_seed(3)) > 0.2
    both = extra & causal_mask(5, 7) & ~pad[:, None, None, :]
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=both)
    ours = scaled_dot_product_attention(
        q, k, v, attn_mask=extra, is_causal=True, key_padding_mask=pad
    )
    close(ours, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kvh", [1, 2, 4])
def test_gqa_matches_torch(kvh, dtype):
    q, k, v = qkv(h=4, kvh=kvh, dtype=dtype)
    mask = torch.rand(5, 7, generator=torch.Generator().manual_seed(2)) > 0.3
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    close(scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True), ref, dtype)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    close(scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), ref, dtype)


def test_fully_masked_rows_are_zero_with_finite_grad():
    q, k, v = qkv()
    q.requires_grad_(True)
    mask = torch.ones(5, 7, dtype=torch.bool)
    mask[2] = False
    for m in (mask, mask_to_bias(mask)):
        out = scaled_dot_product_attention(q, k, v, attn_mask=m)
        close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=m), torch.float32)
        assert torch.all(out[:, :, 2] == 0)
        (g,) = torch.autograd.grad(out.sum(), q)
        assert torch.isfinite(g).all()


def test_return_weights_and_dropout():
    q, k, v = qkv(lq=16, lk=64)
    out, w = scaled_dot_product_attention(q, k, v, return_weights=True)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 16))
    torch.testing.assert_close(out, w @ v)
    torch.manual_seed(0)
    out_d, w_d = scaled_dot_product_attention(q, k, v, dropout_p=0.5, return_weights=True)
    torch.testing.assert_close(out_d, w_d @ v)
    dropped = w_d == 0
    assert 0.4 < dropped.float().mean().item() < 0.6
    torch.testing.assert_close(w_d[~dropped], w[~dropped] * 2.0)


def test_mask_helpers():
    assert causal_mask(2, 3, offset=1).tolist() == [[True, True, False], [True, True, True]]
    sw = sliding_window_mask(4, 2)
    assert sw.tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [False, True, True, False],
        [False, False, True, True],
    ]
    assert torch.equal(sliding_window_mask(3, 100), causal_mask(3))
    b = mask_to_bias(torch.tensor([True, False]))
    assert b[0] == 0 and b[1] == float("-inf")


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda q, k, v: (q, k[..., :4], v, {}), r"k: expected head dim 8 to match q's, got 4"),
        (lambda q, k, v: (q, k[:, :3], v[:, :3], {"enable_gqa": True}),
         r"k: .*divides q's 4 heads, got 3"),
        (lambda q, k, v: (q, k[:, :2], v[:, :2], {}), r"enable_gqa=True"),
        (lambda q, k, v: (q, k, v[:, :, :3], {}), r"v: expected \(batch, kv_heads, Lk\)"),
        (lambda q, k, v: (q[0], k, v, {}), r"q: expected 4 dims"),
        (lambda q, k, v: (q, k, v, {"attn_mask": torch.ones(5, 6, dtype=torch.bool)}),
         r"attn_mask: expected a shape that broadcasts to .*\(2, 4, 5, 7\), got \(5, 6\)"),
        (lambda q, k, v: (q, k, v, {"attn_mask": torch.ones(3, 2, 4, 5, 7, dtype=torch.bool)}),
         r"attn_mask: expected a shape"),
        (lambda q, k, v: (q, k, v, {"attn_mask": torch.ones(5, 7, dtype=torch.int64)}),
         r"attn_mask: expected dtype torch.bool or a float dtype, got torch.int64"),
        (lambda q, k, v: (q, k, v, {"key_padding_mask": torch.zeros(2, 6, dtype=torch.bool)}),
         r"key_padding_mask: expected shape \(batch, Lk\) = \(2, 7\), got \(2, 6\)"),
        (lambda q, k, v: (q, k, v, {"key_padding_mask": torch.zeros(2, 7)}),
         r"key_padding_mask: expected a torch.bool tensor"),
        (lambda q, k, v: (q, k, v, {"dropout_p": 1.0}), r"dropout_p"),
        (lambda q, k, v: (q, k.double(), v, {}), r"k, v: expected q's dtype"),
    ],
)
def test_bad_inputs_raise(make, match):
    q, k, v, kw = make(*qkv())
    with pytest.raises(ValueError, match=match):
        scaled_dot_product_attention(q, k, v, **kw)


def test_bad_config_raises():
    with pytest.raises(ValueError, match=r"n_kv_heads: expected a divisor of n_heads=4, got 3"):
        AttentionConfig(d_model=32, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match=r"n_heads: expected a divisor of d_model=30, got 4"):
        AttentionConfig(d_model=30, n_heads=4)
    mha = MultiHeadAttention(AttentionConfig(d_model=16, n_heads=2))
    with pytest.raises(ValueError, match=r"x: expected \(batch, seq, 16\), got \(2, 3, 8\)"):
        mha(torch.randn(2, 3, 8))


# ------------------------------------------------------------------ multi-head attention


@pytest.mark.parametrize("dtype", DTYPES)
def test_mha_matches_torch_multiheadattention(dtype):
    torch.manual_seed(0)
    d, h = 32, 4
    ref = torch.nn.MultiheadAttention(d, h, batch_first=True, dtype=dtype).eval()
    ours = MultiHeadAttention(AttentionConfig(d_model=d, n_heads=h)).to(dtype).eval()
    wq, wk, wv = ref.in_proj_weight.chunk(3)
    bq, bk, bv = ref.in_proj_bias.chunk(3)
    with torch.no_grad():
        for lin, w, b in ((ours.q_proj, wq, bq), (ours.k_proj, wk, bk), (ours.v_proj, wv, bv)):
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        ours.o_proj.weight.copy_(ref.out_proj.weight)
        ours.o_proj.bias.copy_(ref.out_proj.bias)
    x = torch.randn(2, 6, d, dtype=dtype)
    ctx = torch.randn(2, 9, d, dtype=dtype)
    pad = padding_mask(torch.tensor([9, 5]))
    # torch.nn.MultiheadAttention's boolean attn_mask means "may NOT attend": the opposite of SDPA
    r, rw = ref(x, x, x, attn_mask=~causal_mask(6), average_attn_weights=False)
    o, ow = ours(x, is_causal=True, return_weights=True)
    close(o, r, dtype)
    close(ow, rw, dtype)
    r, _ = ref(x, ctx, ctx, key_padding_mask=pad)
    close(ours(x, ctx, key_padding_mask=pad), r, dtype)


@pytest.mark.parametrize("kvh", [1, 2])
def test_gqa_equals_mha_with_repeated_kv_weights(kvh):
    torch.manual_seed(0)
    gqa = MultiHeadAttention(AttentionConfig(d_model=32, n_heads=4, n_kv_heads=kvh, bias=True))
    mha = MultiHeadAttention(AttentionConfig(d_model=32, n_heads=4, bias=True))
    group, hd = 4 // kvh, 8
    sd = gqa.state_dict()
    for name in ("k_proj", "v_proj"):
        w = sd[f"{name}.weight"].view(kvh, hd, 32).repeat_interleave(group, 0).reshape(32, 32)
        sd[f"{name}.weight"] = w
        b = sd[f"{name}.bias"].view(kvh, hd).repeat_interleave(group, 0)
        sd[f"{name}.bias"] = b.reshape(32)
    mha.load_state_dict(sd)
    x = torch.randn(2, 5, 32)
    close(gqa(x, is_causal=True), mha(x, is_causal=True), torch.float32)
    assert sum(p.numel() for p in gqa.parameters()) < sum(p.numel() for p in mha.parameters())


def test_attn_bias_is_added_to_scores():
    torch.manual_seed(0)
    mha = MultiHeadAttention(AttentionConfig(d_model=16, n_heads=2, causal=True)).eval()
    x = torch.randn(1, 5, 16)
    bias = torch.randn(1, 2, 5, 5)
    _, w = mha(x, attn_bias=bias, return_weights=True)
    q = mha.q_proj(x).view(1, 5, 2, 8).transpose(1, 2)
    k = mha.k_proj(x).view(1, 5, 2, 8).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / 8**0.5 + bias
    expected = scores.masked_fill(~causal_mask(5), float("-inf")).softmax(-1)
    close(w, expected, torch.float32)
    with pytest.raises(ValueError, match="attn_bias"):
        mha(x, attn_bias=torch.zeros(1, 3, 5, 5))


# ------------------------------------------------------------------ properties

SETTINGS = settings(max_examples=15, deadline=None)


def rope_half(q, k, positions, base=10000.0):
    """A minimal half-split RoPE for the cache tests (positional.py has the real one)."""
    d = q.shape[-1]
    inv = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = positions.to(torch.float64)[:, None] * inv[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1).to(q.dtype)
    sin = torch.cat([ang.sin(), ang.sin()], -1).to(q.dtype)

    def rot(x):
        x1, x2 = x.chunk(2, -1)
        return x * cos + torch.cat([-x2, x1], -1) * sin

    return rot(q), rot(k)


@SETTINGS
@given(n=st.integers(2, 10), t=st.data(), kvh=st.sampled_from([1, 2, 4]), seed=st.integers(0, 99))
def test_causal_output_ignores_future_tokens(n, t, kvh, seed):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(AttentionConfig(d_model=16, n_heads=4, n_kv_heads=kvh, causal=True),
                             rotary=rope_half).eval()
    pos = t.draw(st.integers(0, n - 2))
    x = torch.randn(2, n, 16)
    y = x.clone()
    y[:, pos + 1:] = torch.randn(2, n - pos - 1, 16)  # change every later token
    a, b = mha(x), mha(y)
    torch.testing.assert_close(a[:, : pos + 1], b[:, : pos + 1], atol=1e-6, rtol=0)
    assert not torch.allclose(a[:, pos + 1:], b[:, pos + 1:])


@SETTINGS
@given(n=st.integers(2, 9), seed=st.integers(0, 99), kvh=st.sampled_from([1, 4]))
def test_attention_without_positions_is_permutation_equivariant(n, seed, kvh):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(AttentionConfig(d_model=16, n_heads=4, n_kv_heads=kvh)).eval()
    x = torch.randn(2, n, 16)
    perm = torch.randperm(n)
    torch.testing.assert_close(mha(x)[:, perm], mha(x[:, perm]), atol=1e-5, rtol=1e-5)


@SETTINGS
@given(
    chunks=st.lists(st.integers(1, 4), min_size=1, max_size=5),
    kvh=st.sampled_from([1, 2, 4]),
    use_rope=st.booleans(),
    seed=st.integers(0, 99),
)
def test_kv_cache_equals_full_recomputation(chunks, kvh, use_rope, seed):
    torch.manual_seed(seed)
    cfg = AttentionConfig(d_model=16, n_heads=4, n_kv_heads=kvh, causal=True)
    mha = MultiHeadAttention(cfg, rotary=rope_half if use_rope else None).eval()
    n = sum(chunks)
    x = torch.randn(2, n, 16)
    full = mha(x)
    cache, outs, start = KVCache(), [], 0
    for c in chunks:  # feed the sequence a few tokens at a time
        outs.append(mha(x[:, start:start + c], cache=cache))
        start += c
    assert len(cache) == n
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-5)


def test_kv_cache_cross_attention_and_bias():
    torch.manual_seed(0)
    cross = MultiHeadAttention(AttentionConfig(d_model=16, n_heads=2)).eval()
    x, ctx = torch.randn(1, 4, 16), torch.randn(1, 6, 16)
    cache = KVCache()
    steps = [cross(x[:, i:i + 1], ctx, cache=cache) for i in range(4)]
    assert len(cache) == 6  # filled once from the context, then reused
    torch.testing.assert_close(torch.cat(steps, 1), cross(x, ctx), atol=1e-6, rtol=0)
    # an additive bias over all keys (ALiBi-like) with a cache
    self_attn = MultiHeadAttention(AttentionConfig(d_model=16, n_heads=2, causal=True)).eval()
    i = torch.arange(4)
    slopes = torch.tensor([0.5, 0.25])[:, None, None]
    bias = -(i[:, None] - i[None, :]).abs().float()[None, None] * slopes
    full = self_attn(x, attn_bias=bias)
    cache = KVCache()
    steps = [
        self_attn(x[:, t:t + 1], attn_bias=bias[:, :, t:t + 1, : t + 1], cache=cache)
        for t in range(4)
    ]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-6, rtol=0)
    cache.crop(2)
    assert len(cache) == 2
