"""FlashAttention-2 Triton kernels (kernels/flash.py), run through Triton's interpreter
on CPU: forward output and log-sum-exp, backward dQ/dK/dV, against a float64 naive reference and
against torch's scaled_dot_product_attention.

Run: TRITON_INTERPRET=1 python -m pytest -m kernels tests/   (this module sets it itself when
there is no CUDA, as long as nothing imported roadmap_lib.kernels before it).
"""

import os
import subprocess
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch.nn.functional as F

from roadmap_lib.attention import causal_mask
from roadmap_lib.kernels import HAVE_TRITON, INTERPRET, MISSING_TRITON, flash_attention, flash_attention_varlen
from roadmap_lib.kernels.reference import naive_attention

pytestmark = pytest.mark.kernels

if not HAVE_TRITON:
    pytest.skip(f"the Triton kernels cannot run here: {MISSING_TRITON}", allow_module_level=True)

if not INTERPRET and not torch.cuda.is_available():
    pytest.skip(
        "roadmap_lib.kernels was imported without TRITON_INTERPRET=1 before this module could set "
        "it; run `TRITON_INTERPRET=1 python -m pytest -m kernels tests/`",
        allow_module_level=True,
    )

DEVICE = "cuda" if torch.cuda.is_available() and not INTERPRET else "cpu"
# (output, gradient) tolerances against the float64 reference, per input dtype
TOL = {torch.float32: (2e-5, 5e-5), torch.float16: (4e-3, 1e-2), torch.bfloat16: (3e-2, 6e-2)}


def make_inputs(batch, heads, kv_heads, lq, lk, d, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, lq, d, generator=g)
    k = torch.randn(batch, kv_heads, lk, d, generator=g)
    v = torch.randn(batch, kv_heads, lk, d, generator=g)
    do = torch.randn(batch, heads, lq, d, generator=g)
    return [t.to(DEVICE, dtype) for t in (q, k, v, do)]


def run_flash(q, k, v, do, causal, **kw):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    o, lse = flash_attention(q, k, v, causal=causal, return_lse=True, **kw)
    o.backward(do)
    return o.detach(), lse, q.grad, k.grad, v.grad


def run_naive64(q, k, v, do, causal):
    q, k, v = (t.detach().double().requires_grad_() for t in (q, k, v))
    o, lse = naive_attention(q, k, v, causal=causal)
    o.backward(do.double())
    return o.detach(), lse.detach(), q.grad, k.grad, v.grad


def assert_close(got, expected, tol, what):
    err = (got.double() - expected.double()).abs().max().item()
    scale = max(1.0, expected.abs().max().item())
    assert err <= tol * scale, f"{what}: max abs error {err:.3g} > {tol * scale:.3g}"


def check_against_naive(q, k, v, do, causal, **kw):
    got = run_flash(q, k, v, do, causal, **kw)
    ref = run_naive64(q, k, v, do, causal)
    tol_o, tol_g = TOL[q.dtype]
    assert got[0].dtype == q.dtype and got[0].shape == q.shape
    assert got[1].dtype == torch.float32 and got[1].shape == q.shape[:3]
    for name, g, r, tol in zip(("o", "lse", "dq", "dk", "dv"), got, ref, (tol_o, tol_o, tol_g, tol_g, tol_g)):
        assert g.shape == r.shape, f"{name}: shape {tuple(g.shape)} != {tuple(r.shape)}"
        assert torch.isfinite(g).all(), f"{name}: not finite"
        assert_close(g, r, tol, name)
    return got


HEADS = {"MHA": (4, 4), "GQA": (4, 2), "MQA": (4, 1)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("kind", list(HEADS))
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_against_naive_and_sdpa(causal, kind, dtype):
    heads, kv_heads = HEADS[kind]
    q, k, v, do = make_inputs(2, heads, kv_heads, 45, 45, 32, dtype)  # 45: a ragged last block
    o, _, dq, dk, dv = check_against_naive(q, k, v, do, causal)

    # torch's own attention, computed in float32 from the same inputs
    q2, k2, v2 = (t.detach().float().requires_grad_() for t in (q, k, v))
    o_ref = F.scaled_dot_product_attention(q2, k2, v2, is_causal=causal, enable_gqa=heads != kv_heads)
    o_ref.backward(do.float())
    tol_o, tol_g = TOL[dtype]
    assert_close(o, o_ref, tol_o, "o vs SDPA")
    for name, g, r in (("dq", dq, q2.grad), ("dk", dk, k2.grad), ("dv", dv, v2.grad)):
        assert_close(g, r, tol_g, f"{name} vs SDPA")


@pytest.mark.parametrize(
    "lq, lk, causal",
    [(1, 1, False), (1, 1, True), (17, 50, False), (50, 17, False), (33, 33, True), (7, 70, False)],
)
def test_ragged_and_unequal_lengths(lq, lk, causal):
    q, k, v, do = make_inputs(1, 2, 1, lq, lk, 16, torch.float32, seed=lq * 100 + lk)
    check_against_naive(q, k, v, do, causal, block_m=16, block_n=16)


@pytest.mark.parametrize("d", [16, 40, 128])
def test_head_dims(d):
    q, k, v, do = make_inputs(1, 2, 2, 20, 20, d, torch.float32, seed=d)
    check_against_naive(q, k, v, do, causal=True)


def test_block_sizes_and_scale():
    q, k, v, do = make_inputs(1, 2, 2, 40, 40, 16, torch.float32, seed=3)
    a = run_flash(q, k, v, do, True, block_m=16, block_n=32)
    b = run_flash(q, k, v, do, True, block_m=32, block_n=16)
    for x, y in zip(a, b):
        assert_close(x, y, 1e-5, "different tiles")
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    o = flash_attention(q2, k2, v2, scale=0.3)
    o_ref = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert_close(o, o_ref, 2e-5, "scale=0.3")


def test_non_contiguous_inputs():
    q, k, v, _ = make_inputs(2, 2, 2, 24, 24, 16, torch.float32, seed=5)
    # a (batch, seq, heads, d) layout viewed as (batch, heads, seq, d)
    qt, kt, vt = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (q, k, v))
    assert not qt.is_contiguous()
    o = flash_attention(qt, kt, vt, causal=True)
    assert_close(o, naive_attention(q.double(), k.double(), v.double(), causal=True)[0], 2e-5, "o")


def test_bfloat16_path():
    """bfloat16 runs (in float32 under the interpreter, see kernels/_triton_env.py) and returns bfloat16."""
    q, k, v, do = make_inputs(1, 4, 2, 33, 33, 16, torch.bfloat16, seed=7)
    o, _, dq, dk, dv = check_against_naive(q, k, v, do, causal=True)
    assert o.dtype == dq.dtype == dk.dtype == dv.dtype == torch.bfloat16


def test_deterministic():
    q, k, v, do = make_inputs(2, 4, 2, 40, 40, 16, torch.float16, seed=11)
    first = run_flash(q, k, v, do, causal=True)
    second = run_flash(q, k, v, do, causal=True)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_lse_matches_logsumexp():
    q, k, v, _ = make_inputs(1, 2, 2, 19, 23, 16, torch.float32, seed=13)
    _, lse = flash_attention(q, k, v, return_lse=True)
    s = q.double() @ k.double().transpose(-1, -2) / 4.0
    assert_close(lse, torch.logsumexp(s, -1), 1e-5, "lse")


def _bad(shape_q=(1, 4, 8, 16), shape_k=(1, 4, 8, 16), shape_v=None, dtype=torch.float32, **kw):
    q = torch.randn(shape_q).to(DEVICE, dtype)
    k = torch.randn(shape_k).to(DEVICE, dtype)
    v = torch.randn(shape_v or shape_k).to(DEVICE, dtype)
    return q, k, v, kw


@pytest.mark.parametrize(
    "case, match",
    [
        (_bad(shape_k=(1, 4, 8, 32)), "expected head dim 16 to match q's, got 32"),
        (_bad(shape_k=(2, 4, 8, 16)), "expected batch 1"),
        (_bad(shape_v=(1, 4, 9, 16)), "v: expected the shape of k"),
        (_bad(shape_k=(1, 3, 8, 16)), "multiple of the number of key/value heads, got 3"),
        (_bad(shape_q=(1, 4, 8, 8), shape_k=(1, 4, 8, 8)), "unsupported head dim 8"),
        (_bad(shape_q=(1, 4, 8, 256), shape_k=(1, 4, 8, 256)), "unsupported head dim 256"),
        (_bad(dtype=torch.float64), "unsupported dtype torch.float64"),
        (_bad(shape_q=(4, 8, 16), shape_k=(4, 8, 16)), "expected 4 dimensions"),
        (_bad(scale=-1.0), "scale: expected a positive"),
        (_bad(block_m=24), "block_m: expected a power of two"),
    ],
)
def test_bad_input_raises(case, match):
    q, k, v, kw = case
    with pytest.raises(ValueError, match=match):
        flash_attention(q, k, v, **kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-without-interpreter message")
def test_cpu_without_interpreter_says_what_to_do():
    code = (
        "import torch\n"
        "from roadmap_lib.kernels import flash_attention\n"
        "q = torch.randn(1, 1, 4, 16)\n"
        "try:\n    flash_attention(q, q, q)\n"
        "except RuntimeError as e:\n    print(e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert "TRITON_INTERPRET" in out.stdout, out.stdout + out.stderr


# --- causal with Lq != Lk, aligned bottom-right (FlashAttention >= 2.1): query i sees keys
# j <= i + Lk - Lq, the mask of roadmap_lib.attention.causal_mask(lq, lk, offset=lk - lq). With
# Lq > Lk the first Lq - Lk queries see no key: output 0, gradient 0, lse -inf (SDPA gives 0 too).


def sdpa64_with_mask(q, k, v, do, mask):
    """torch's SDPA in float64 with an explicit boolean mask: o, lse and the gradients."""
    q, k, v = (t.detach().double().requires_grad_() for t in (q, k, v))
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.shape[-3] != k.shape[-3])
    o.backward(do.double())
    scores = q @ k.repeat_interleave(q.shape[-3] // k.shape[-3], -3).transpose(-1, -2)
    lse = torch.logsumexp((scores / q.shape[-1] ** 0.5).masked_fill(~mask, float("-inf")), -1)
    return o.detach(), lse.detach(), q.grad, k.grad, v.grad


def check_against(got, want, dtype=torch.float32):
    tol_o, tol_g = TOL[dtype]
    for name, g, r, tol in zip(("o", "lse", "dq", "dk", "dv"), got, want, (tol_o, tol_o, tol_g, tol_g, tol_g)):
        assert g.shape == r.shape, f"{name}: shape {tuple(g.shape)} != {tuple(r.shape)}"
        if name == "lse":  # rows that see no key: -inf on both sides
            assert torch.equal(torch.isneginf(g), torch.isneginf(r)), "lse: rows with no key differ"
            g, r = g.masked_fill(torch.isneginf(g), 0.0), r.masked_fill(torch.isneginf(r), 0.0)
        assert torch.isfinite(g).all(), f"{name}: not finite"
        assert_close(g, r, tol, name)


@pytest.mark.parametrize("lq, lk", [(5, 37), (37, 5), (1, 40), (40, 1), (20, 33), (33, 20)])
def test_causal_unequal_lengths_bottom_right(lq, lk):
    q, k, v, do = make_inputs(1, 2, 1, lq, lk, 16, torch.float32, seed=lq * 100 + lk)
    got = run_flash(q, k, v, do, True, block_m=16, block_n=16)
    check_against(got, sdpa64_with_mask(q, k, v, do, causal_mask(lq, lk, offset=lk - lq)))


# --- double backward (issue 12): the backward kernels are first order only. Differentiating
# through them (create_graph=True, e.g. a gradient penalty) used to give a wrong q.grad silently.


@pytest.mark.parametrize("first_loss", ["sum", "square"])
def test_double_backward_is_a_clear_error(first_loss):
    q, k, v, _ = make_inputs(1, 2, 1, 8, 8, 16, torch.float32, seed=17)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    o = flash_attention(q, k, v, causal=True, block_m=16, block_n=16)
    loss = o.sum() if first_loss == "sum" else o.pow(2).sum()
    (dq,) = torch.autograd.grad(loss, q, create_graph=True)  # first order: fine
    with pytest.raises(RuntimeError, match=r"flash_attention: double backward .* not supported"):
        (loss + dq.pow(2).sum()).backward()  # a gradient penalty needs the second order


# --- variable-length batches: packed sequences (total_tokens, heads, d) with cumulative lengths,
# like FlashAttention's flash_attn_varlen_func; compared with SDPA on the whole packed batch under
# a block-diagonal mask (each sequence sees only itself; causal bottom-right within a sequence).


def packed_inputs(lens_q, lens_k, heads, kv_heads, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    tq, tk = sum(lens_q), sum(lens_k)
    q, k, v, do = (torch.randn(n, h, d, generator=g).to(DEVICE)
                   for n, h in ((tq, heads), (tk, kv_heads), (tk, kv_heads), (tq, heads)))
    cu_q, cu_k = (torch.tensor([0, *lens], dtype=torch.int32).cumsum(0).to(DEVICE, torch.int32)
                  for lens in (lens_q, lens_k))
    return q, k, v, do, cu_q, cu_k


def block_diagonal_mask(lens_q, lens_k, causal):
    mask = torch.zeros(sum(lens_q), sum(lens_k), dtype=torch.bool)
    i = j = 0
    for lq, lk in zip(lens_q, lens_k):
        block = causal_mask(lq, lk, offset=lk - lq) if causal else torch.ones(lq, lk, dtype=torch.bool)
        mask[i:i + lq, j:j + lk] = block
        i, j = i + lq, j + lk
    return mask


def run_varlen(q, k, v, do, cu_q, cu_k, lens_q, lens_k, causal, **kw):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    o, lse = flash_attention_varlen(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), causal=causal,
                                    return_lse=True, **kw)
    o.backward(do)
    return o.detach(), lse, q.grad, k.grad, v.grad


# an empty query sequence, a query sequence whose keys are empty, Lq < Lk, Lq > Lk, ragged tiles
LENS_Q, LENS_K = [7, 0, 20, 33, 4], [12, 5, 20, 17, 0]


@pytest.mark.parametrize("kind", ["MHA", "GQA"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_varlen_against_sdpa_with_block_mask(causal, kind):
    heads, kv_heads = HEADS[kind]
    q, k, v, do, cu_q, cu_k = packed_inputs(LENS_Q, LENS_K, heads, kv_heads, seed=int(causal))
    got = run_varlen(q, k, v, do, cu_q, cu_k, LENS_Q, LENS_K, causal, block_m=16, block_n=16)
    assert got[0].shape == q.shape and got[1].shape == (heads, q.shape[0])  # lse: (heads, total_q)
    # SDPA on the packed batch as one (1, heads, total, d) sequence
    as_seq = lambda t: t.transpose(0, 1).unsqueeze(0)
    want = sdpa64_with_mask(as_seq(q), as_seq(k), as_seq(v), as_seq(do),
                            block_diagonal_mask(LENS_Q, LENS_K, causal))
    want = [want[0][0].transpose(0, 1), want[1][0], *(g[0].transpose(0, 1) for g in want[2:])]
    check_against(got, want)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_varlen_with_equal_lengths_is_the_dense_kernel(causal):
    q, k, v, do = make_inputs(3, 4, 2, 21, 21, 16, torch.float32, seed=19)
    pack = lambda t: t.transpose(1, 2).reshape(-1, t.shape[1], t.shape[3])
    cu = torch.arange(0, 64, 21, dtype=torch.int32, device=DEVICE)
    dense = run_flash(q, k, v, do, causal, block_m=16, block_n=16)
    packed = run_varlen(pack(q), pack(k), pack(v), pack(do), cu, cu, [21] * 3, [21] * 3, causal,
                        block_m=16, block_n=16)
    for name, a, b in zip(("o", "dq", "dk", "dv"), (dense[0], *dense[2:]), (packed[0], *packed[2:])):
        assert_close(pack(a), b, 1e-6, name)
    assert_close(dense[1].permute(1, 0, 2).reshape(4, -1), packed[1], 1e-6, "lse")


def test_varlen_double_backward_is_a_clear_error():
    q, k, v, _, cu_q, cu_k = packed_inputs([3, 5], [4, 5], 2, 1, seed=23)
    q.requires_grad_()
    o = flash_attention_varlen(q, k, v, cu_q, cu_k, 5, 5, causal=True)
    (dq,) = torch.autograd.grad(o.sum(), q, create_graph=True)
    with pytest.raises(RuntimeError, match=r"flash_attention_varlen: double backward .* not supported"):
        dq.pow(2).sum().backward()


def _bad_varlen(lens_q=(3, 5), lens_k=(4, 5), heads=2, kv_heads=1, **kw):
    q, k, v, _, cu_q, cu_k = packed_inputs(list(lens_q), list(lens_k), heads, kv_heads)
    args = {"q": q, "k": k, "v": v, "cu_seqlens_q": cu_q, "cu_seqlens_k": cu_k,
            "max_seqlen_q": max(lens_q), "max_seqlen_k": max(lens_k)}
    return {**args, **kw}


@pytest.mark.parametrize("case, match", [
    (_bad_varlen(q=torch.zeros(1, 8, 2, 16)), r"q: expected 3 dimensions \(total_tokens, heads, head_dim\)"),
    (_bad_varlen(cu_seqlens_q=torch.tensor([0, 3, 8])), "cu_seqlens_q: expected an int32 tensor .*got torch.int64"),
    (_bad_varlen(cu_seqlens_q=torch.tensor([1, 3, 8], dtype=torch.int32)), "cu_seqlens_q: expected .* start at 0"),
    (_bad_varlen(cu_seqlens_k=torch.tensor([0, 6, 4, 9], dtype=torch.int32)),
     "cu_seqlens_k: expected 3 entries .* like cu_seqlens_q"),
    (_bad_varlen(cu_seqlens_k=torch.tensor([0, 6, 4], dtype=torch.int32)), "cu_seqlens_k: expected non-decreasing"),
    (_bad_varlen(cu_seqlens_q=torch.tensor([0, 3, 7], dtype=torch.int32)),
     r"cu_seqlens_q: expected its last entry to be q's total_tokens 8, got 7"),
    (_bad_varlen(max_seqlen_q=4), "max_seqlen_q: expected at least the longest sequence, 5, got 4"),
    (_bad_varlen(kv_heads=3, heads=4), "multiple of the number of key/value heads, got 3"),
    (_bad_varlen(scale=0.0), "scale: expected a positive"),
])
def test_varlen_bad_input_raises(case, match):
    with pytest.raises(ValueError, match=match):
        flash_attention_varlen(**case)
