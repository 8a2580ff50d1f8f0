"""The attention backends compute the same function: "sdpa" (PyTorch's fused kernels) and "flash"
(the Triton kernel, through the interpreter on a CPU) against "math" (the written-out code), for
every mask kind and every model family, forward and backward, in float32 (1e-5) and float64 (1e-10);
and the shipped checkpoints give the same logits under each backend."""

from __future__ import annotations

import copy
import os

import pytest
import torch

from roadmap_lib.attention import BACKENDS, AttentionConfig, causal_mask, mask_to_bias, scaled_dot_product_attention, \
    set_attention_backend
from roadmap_lib.models import GPT, GPTConfig, Llama, LlamaConfig
from roadmap_lib.models.bart import Bart, BartConfig
from roadmap_lib.models.bert import BertConfig, BertForMaskedLM
from roadmap_lib.models.encoder_decoder import Transformer, TransformerConfig
from roadmap_lib.models.t5 import T5, T5Config

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _inputs(dtype, heads=4, kv_heads=4, lq=9, lk=9, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, heads, lq, d, generator=g, dtype=dtype, requires_grad=True)
    k = torch.randn(2, kv_heads, lk, d, generator=g, dtype=dtype, requires_grad=True)
    v = torch.randn(2, kv_heads, lk, d, generator=g, dtype=dtype, requires_grad=True)
    return q, k, v


def _masks(kind, lq, lk, dtype):
    g = torch.Generator().manual_seed(1)
    padding = torch.zeros(2, lk, dtype=torch.bool)
    padding[1, lk - 3:] = True
    slopes = torch.tensor([0.5, 0.25, 0.125, 0.0625], dtype=dtype)[:, None, None]
    alibi = -slopes * (torch.arange(lk)[None, :] - torch.arange(lq)[:, None]).abs().to(dtype)
    return {
        "none": {},
        "causal": {"is_causal": True},
        "boolean": {"attn_mask": torch.rand(lq, lk, generator=g) > 0.3},
        "padding": {"key_padding_mask": padding},
        "causal+padding": {"is_causal": True, "key_padding_mask": padding},
        "additive bias (ALiBi)": {"attn_mask": alibi[None]},
        "bias+causal+padding": {"attn_mask": alibi[None], "is_causal": True, "key_padding_mask": padding},
        "a row with no key": {"attn_mask": torch.ones(lq, lk, dtype=torch.bool).index_fill(0, torch.tensor([2]), False)},
        "scale=1": {"scale": 1.0, "is_causal": True},
    }[kind]


def _run(backend, q, k, v, **kw):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = scaled_dot_product_attention(q, k, v, enable_gqa=k.shape[1] != q.shape[1], backend=backend, **kw)
    (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum().backward()
    return out.detach(), q.grad, k.grad, v.grad


MASK_KINDS = ["none", "causal", "boolean", "padding", "causal+padding", "additive bias (ALiBi)",
              "bias+causal+padding", "a row with no key", "scale=1"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["MHA", "GQA", "MQA"])
def test_sdpa_equals_math(kind, dtype, kv_heads):
    q, k, v = _inputs(dtype, kv_heads=kv_heads)
    kw = _masks(kind, 9, 9, dtype)
    for ours, theirs in zip(_run("math", q, k, v, **kw), _run("sdpa", q, k, v, **kw)):
        assert torch.isfinite(theirs).all()
        torch.testing.assert_close(theirs, ours, atol=TOL[dtype], rtol=TOL[dtype])


def test_sdpa_with_cross_attention_lengths_and_return_weights():
    q, k, v = _inputs(torch.float64, lq=5, lk=11)
    kw = {"key_padding_mask": torch.zeros(2, 11, dtype=torch.bool).index_fill(1, torch.tensor([10]), True)}
    for ours, theirs in zip(_run("math", q, k, v, **kw), _run("sdpa", q, k, v, **kw)):
        torch.testing.assert_close(theirs, ours, atol=1e-10, rtol=1e-10)
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True, backend="sdpa")
    assert weights.shape == (2, 4, 5, 11)  # the weights come from the written-out path


def test_bad_backends_are_refused():
    q, k, v = _inputs(torch.float32)
    with pytest.raises(ValueError, match=r"backend: expected one of \('math', 'sdpa', 'flash'\), got 'fast'"):
        scaled_dot_product_attention(q, k, v, backend="fast")
    with pytest.raises(ValueError, match="backend: expected one of"):
        AttentionConfig(d_model=16, n_heads=2, backend="cuda")
    with pytest.raises(ValueError, match="backend='flash' takes no attn_mask"):
        scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(9), backend="flash")
    with pytest.raises(ValueError, match="has no MultiHeadAttention"):
        set_attention_backend(torch.nn.Linear(2, 2), "sdpa")


# ---- every model family, forward and backward ------------------------------------------------


def _gpt():
    return GPT(GPTConfig(vocab_size=31, context_length=16, d_model=32, n_layers=2, n_heads=4))


def _llama():
    return Llama(LlamaConfig(vocab_size=31, context_length=16, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2))


def _bert():
    return BertForMaskedLM(BertConfig(vocab_size=31, context_length=16, d_model=32, n_layers=2, n_heads=4))


def _t5():
    return T5(T5Config(vocab_size=31, d_model=24, d_kv=8, d_ff=40, n_layers=2, n_heads=3, num_buckets=8,
                       max_distance=16, dropout=0.0))


def _bart():
    return Bart(BartConfig(vocab_size=31, context_length=16, d_model=32, encoder_layers=2, decoder_layers=2,
                           n_heads=4, d_ff=48, dropout=0.0))


def _transformer():
    return Transformer(TransformerConfig(vocab_size=31, context_length=16, d_model=32, n_layers=2, n_heads=4,
                                         dropout=0.0))


ids = torch.randint(0, 31, (2, 12), generator=torch.Generator().manual_seed(3))
pad = torch.zeros(2, 12, dtype=torch.bool)
pad[0, 9:] = True
FAMILIES = {
    "gpt": (_gpt, lambda m: m(ids)),
    "llama (GQA, RoPE)": (_llama, lambda m: m(ids)),
    "bert (padding)": (_bert, lambda m: m(ids, attention_mask=~pad)),
    "t5 (position bias, padding)": (_t5, lambda m: m.decode(ids[:, :7], m.encode(ids, pad), pad)),
    "bart (padding)": (_bart, lambda m: m.decode(ids[:, :7], m.encode(ids, pad), pad)),
    "transformer (padding)": (_transformer, lambda m: m(ids, ids[:, :7], pad)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_model_family_gives_the_same_logits_and_gradients(family, dtype):
    build, run = FAMILIES[family]
    torch.manual_seed(0)
    math_model = build().to(dtype).eval()
    sdpa_model = set_attention_backend(copy.deepcopy(math_model), "sdpa")
    results = []
    for model in (math_model, sdpa_model):
        out = run(model)
        (out * torch.linspace(-1, 1, out.shape[-1], dtype=dtype)).sum().backward()
        results.append((out.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (a, grads_a), (b, grads_b) = results
    torch.testing.assert_close(b, a, atol=TOL[dtype], rtol=TOL[dtype])
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], atol=TOL[dtype], rtol=TOL[dtype], msg=name)


def test_configs_choose_the_backend():
    for build in (lambda b: GPT(GPTConfig(vocab_size=5, context_length=4, d_model=8, n_layers=1, n_heads=2,
                                          attention_backend=b)),
                  lambda b: Llama(LlamaConfig(vocab_size=5, context_length=4, d_model=8, n_layers=1, n_heads=2,
                                              attention_backend=b))):
        for backend in BACKENDS:
            model = build(backend)
            assert {m.config.backend for m in model.modules() if hasattr(m, "q_proj")} == {backend}


def test_kv_cached_decoding_is_the_same_under_sdpa():
    torch.manual_seed(0)
    model = _llama().eval()
    fast = set_attention_backend(copy.deepcopy(model), "sdpa")
    with torch.no_grad():
        for m in (model, fast):
            cache = m.new_cache()
            m.outs = [m(ids[:, :5], cache)] + [m(ids[:, i:i + 1], cache) for i in range(5, 9)]
    for a, b in zip(model.outs, fast.outs):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


# ---- the shipped checkpoints -----------------------------------------------------------------


def test_shipped_checkpoints_give_the_same_logits_under_sdpa():
    from roadmap_lib.zoo import load_char_gpt

    for name in ("gpt-char-jargon", "gpt-char-draft"):
        model, vocab, _ = load_char_gpt(name)
        x = vocab.encode("The hacker ethic holds that information sharing is a powerful good")[None, :64]
        with torch.no_grad():
            a = model(x)
            b = set_attention_backend(model, "sdpa")(x)
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5, msg=name)


# ---- the Triton kernel, through the interpreter (the kernels stage) ---------------------------


@pytest.mark.kernels
@pytest.mark.parametrize("family", ["gpt", "llama (GQA, RoPE)"])
def test_flash_backend_equals_math_for_causal_models(family):
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    from roadmap_lib.kernels import HAVE_TRITON, INTERPRET

    if not HAVE_TRITON or (not INTERPRET and not torch.cuda.is_available()):
        pytest.skip("needs Triton (interpreter on a CPU)")
    torch.manual_seed(0)
    # the kernel takes head dims 16 to 128: 2 heads of 16
    model = (GPT(GPTConfig(vocab_size=31, context_length=16, d_model=32, n_layers=2, n_heads=2)) if family == "gpt"
             else Llama(LlamaConfig(vocab_size=31, context_length=16, d_model=64, n_layers=2, n_heads=4,
                                    n_kv_heads=2))).eval()
    run = FAMILIES[family][1]
    flash = set_attention_backend(copy.deepcopy(model), "flash")
    a, b = run(model), run(flash)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    a.sum().backward()
    b.sum().backward()
    for (name, p), q in zip(model.named_parameters(), flash.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)
