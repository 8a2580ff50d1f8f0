"""The pure-PyTorch tiled FlashAttention reference (kernels/reference.py) against the naive
definition and torch's scaled_dot_product_attention. No Triton runs here, so these tests are not
marked `kernels`: they run with the unit tests."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.kernels.reference import (
    naive_attention,
    online_softmax,
    online_softmax_states,
    tiled_attention,
    tiled_attention_forward,
    validate_attention_inputs,
)


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("heads, kv_heads", [(4, 4), (4, 2), (4, 1)])
def test_naive_matches_sdpa(causal, heads, kv_heads):
    q, k, v = rand(2, heads, 13, 8, seed=1), rand(2, kv_heads, 13, 8, seed=2), rand(2, kv_heads, 13, 8, seed=3)
    o, lse = naive_attention(q, k, v, causal=causal)
    o_ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=heads != kv_heads)
    torch.testing.assert_close(o, o_ref)
    assert lse.shape == (2, heads, 13)


@settings(max_examples=25, deadline=None)
@given(
    lq=st.integers(1, 40), lk=st.integers(1, 40), causal=st.booleans(),
    block_m=st.sampled_from([1, 4, 16]), block_n=st.sampled_from([1, 5, 16]),
    kv_heads=st.sampled_from([1, 2]), seed=st.integers(0, 1000),
)
def test_tiled_forward_matches_naive(lq, lk, causal, block_m, block_n, kv_heads, seed):
    if causal:
        lk = lq
    q, k, v = rand(1, 2, lq, 4, seed=seed), rand(1, kv_heads, lk, 4, seed=seed + 1), rand(1, kv_heads, lk, 4, seed=seed + 2)
    o, lse = tiled_attention_forward(q, k, v, causal, None, block_m, block_n)
    o_ref, lse_ref = naive_attention(q, k, v, causal)
    torch.testing.assert_close(o, o_ref)
    torch.testing.assert_close(lse, lse_ref)


@pytest.mark.parametrize("causal", [False, True])
def test_tiled_backward_matches_autograd_of_naive(causal):
    lq, lk = (21, 21) if causal else (21, 11)
    q, k, v = rand(2, 4, lq, 8, seed=4), rand(2, 2, lk, 8, seed=5), rand(2, 2, lk, 8, seed=6)
    do = rand(2, 4, lq, 8, seed=7)
    grads = []
    for fn in (lambda a, b, c: tiled_attention(a, b, c, causal, None, 8, 4),
               lambda a, b, c: naive_attention(a, b, c, causal)[0]):
        a, b, c = (t.clone().requires_grad_() for t in (q, k, v))
        fn(a, b, c).backward(do)
        grads.append((a.grad, b.grad, c.grad))
    for g, r in zip(*grads):
        torch.testing.assert_close(g, r)


@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck_float64(causal):
    q = rand(1, 2, 6, 4, seed=8).requires_grad_()
    k = rand(1, 1, 6, 4, seed=9).requires_grad_()
    v = rand(1, 1, 6, 4, seed=10).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, c: tiled_attention(a, b, c, causal, 0.7, 4, 4), (q, k, v))


def test_float32_accumulation_for_half_inputs():
    q, k, v = (rand(1, 2, 20, 16, seed=s, dtype=torch.float32).half() for s in (11, 12, 13))
    o, lse = tiled_attention_forward(q, k, v, True)
    assert o.dtype == torch.float16 and lse.dtype == torch.float32
    o_ref, _ = naive_attention(q.double(), k.double(), v.double(), True)
    assert (o.double() - o_ref).abs().max() < 2e-3


def test_online_softmax():
    x = 10 * rand(3, 50, seed=14)
    for block in (1, 7, 50, 64):
        torch.testing.assert_close(online_softmax(x, block), torch.softmax(x, -1))
    states = online_softmax_states(x, 7)
    assert len(states) == 8
    m, l = states[-1]
    torch.testing.assert_close(m, x.amax(-1))
    torch.testing.assert_close(m + torch.log(l), torch.logsumexp(x, -1))
    running_max = torch.stack([s[0] for s in states])
    assert (running_max[1:] >= running_max[:-1]).all()


def test_bad_input():
    q = rand(1, 4, 8, 16)
    with pytest.raises(ValueError, match="multiple of the number of key/value heads"):
        validate_attention_inputs(q, rand(1, 3, 8, 16), rand(1, 3, 8, 16))
    with pytest.raises(ValueError, match="expected head dim 16"):
        naive_attention(q, rand(1, 4, 8, 8), rand(1, 4, 8, 8))
    with pytest.raises(ValueError, match="block_m"):
        tiled_attention(q, q, q, block_m=0)
    with pytest.raises(TypeError, match="k: expected a torch.Tensor"):
        naive_attention(q, None, q)
    with pytest.raises(ValueError, match="block_size"):
        online_softmax(rand(4), 0)


# --- causal attention with Lq != Lk: aligned bottom-right, as FlashAttention >= 2.1 and
# roadmap_lib.attention.causal_mask(lq, lk, offset=lk - lq) do (query i sees keys j <= i + lk - lq;
# with lq > lk the first lq - lk queries see no key at all and get output 0, like SDPA's)


def sdpa_with_mask(q, k, v, mask, do):
    """Output and gradients of torch's SDPA (float64) with an explicit boolean mask."""
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.shape[1] != k.shape[1])
    o.backward(do)
    return o.detach(), q.grad, k.grad, v.grad


@pytest.mark.parametrize("lq, lk", [(5, 13), (13, 5), (1, 9), (9, 1), (16, 33)])
def test_causal_unequal_lengths_is_bottom_right(lq, lk):
    from roadmap_lib.attention import causal_mask

    q, k, v = rand(2, 4, lq, 8, seed=1), rand(2, 2, lk, 8, seed=2), rand(2, 2, lk, 8, seed=3)
    do = rand(2, 4, lq, 8, seed=4)
    mask = causal_mask(lq, lk, offset=lk - lq)
    want = sdpa_with_mask(q, k, v, mask, do)
    o, lse = naive_attention(q, k, v, causal=True)
    o_tiled, lse_tiled = tiled_attention_forward(q, k, v, True, None, 4, 3)
    s = (q @ k.repeat_interleave(2, 1).transpose(-1, -2) / 8**0.5).masked_fill(~mask, float("-inf"))
    for got_o, got_lse in ((o, lse), (o_tiled, lse_tiled)):
        torch.testing.assert_close(got_o, want[0])
        torch.testing.assert_close(got_lse, torch.logsumexp(s, -1))  # -inf for a row with no key
    grads = []
    for fn in (lambda a, b, c: tiled_attention(a, b, c, True, None, 4, 3),
               lambda a, b, c: naive_attention(a, b, c, True)[0]):
        a, b, c = (t.clone().requires_grad_() for t in (q, k, v))
        fn(a, b, c).backward(do)
        grads.append((a.grad, b.grad, c.grad))
    for got in grads:
        for g, r in zip(got, want[1:]):
            assert torch.isfinite(g).all()
            torch.testing.assert_close(g, r)


# --- double backward (issue 12): the hand-written backward is first order only. Differentiating
# through it (create_graph=True, e.g. a gradient penalty) used to run and give a wrong q.grad
# silently; now it is a clear error.


@pytest.mark.parametrize("first_loss", ["sum", "square"])
def test_tiled_double_backward_is_a_clear_error(first_loss):
    q, k, v = (rand(1, 2, 8, 4, seed=s).requires_grad_() for s in (20, 21, 22))
    o = tiled_attention(q, k, v, True, None, 4, 4)
    loss = o.sum() if first_loss == "sum" else o.pow(2).sum()
    (dq,) = torch.autograd.grad(loss, q, create_graph=True)  # first order: fine
    with pytest.raises(RuntimeError, match=r"tiled_attention: double backward .* not supported"):
        (loss + dq.pow(2).sum()).backward()  # a gradient penalty needs the second order


def test_tiled_first_order_gradients_unchanged_under_create_graph():
    q, k, v = (rand(1, 2, 8, 4, seed=s).requires_grad_() for s in (23, 24, 25))
    grads = torch.autograd.grad(tiled_attention(q, k, v, True).sum(), (q, k, v), create_graph=True)
    expected = torch.autograd.grad(naive_attention(q, k, v, True)[0].sum(), (q, k, v))
    for g, r in zip(grads, expected):
        torch.testing.assert_close(g.detach(), r)
