"""roadmap_lib.export: the cache-as-tensor GPT equals the model, ONNX Runtime equals PyTorch,
our GPT saved in transformers' format loads back with AutoModelForCausalLM with the same logits."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.export import (
    CachedGPT,
    export_onnx,
    load_pretrained,
    onnx_forward,
    onnx_greedy,
    onnx_session,
    save_pretrained,
)
from roadmap_lib.generation import greedy
from roadmap_lib.models import GPT, GPTConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=40, context_length=32, d_model=16, n_layers=2, n_heads=2)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(4)
    return m


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 3), past=st.integers(0, 12), new=st.integers(1, 6), seed=st.integers(0, 99))
def test_cached_gpt_equals_the_model_with_its_kv_cache(model, batch, past, new, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 40, (batch, past + new), generator=g)
    wrapper = CachedGPT(model)
    with torch.no_grad():
        _, cache = wrapper(ids[:, :past], wrapper.empty_past(batch)) if past else (None, wrapper.empty_past(batch))
        logits, present = wrapper(ids[:, past:], cache)
        full = model(ids)
    torch.testing.assert_close(logits, full[:, past:], atol=1e-5, rtol=0)
    assert present.shape == (2, 2, batch, 2, past + new, 8)


def test_cached_gpt_refuses_other_models():
    with pytest.raises(TypeError, match="model: expected a roadmap_lib GPT"):
        CachedGPT(torch.nn.Linear(2, 2))


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", [True, False], ids=["torch.export", "torchscript"])
def test_onnx_runtime_equals_pytorch_with_the_kv_cache(model, tmp_path, dynamo):
    """10-40 s with dynamo (torch.export traces the model once), ~2 s with the TorchScript tracer;
    then onnxruntime runs it."""
    path = export_onnx(model, tmp_path / "gpt.onnx", optimize=False, dynamo=dynamo)
    session = onnx_session(path)
    wrapper = CachedGPT(model)
    g = torch.Generator().manual_seed(1)
    for batch, past, new in [(1, 0, 5), (3, 4, 1), (2, 9, 3)]:  # prefill, decode steps, chunks
        ids = torch.randint(0, 40, (batch, new), generator=g)
        cache = torch.randn(2, 2, batch, 2, past, 8, generator=g)
        with torch.no_grad():
            want = wrapper(ids, cache)
        got = onnx_forward(session, ids, cache)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    prompt = torch.randint(0, 40, (2, 4), generator=g)
    assert torch.equal(onnx_greedy(session, prompt, 10, wrapper.empty_past(2)),
                       greedy(model, prompt, 10, use_cache=True))
    with pytest.raises(TypeError, match=r"past: the graph was exported for tensor\(float\)"):
        onnx_forward(session, prompt, wrapper.empty_past(2, torch.float64))
    with pytest.raises(TypeError, match="ids: expected int64"):
        onnx_forward(session, prompt.int(), wrapper.empty_past(2))
    with pytest.raises(ValueError, match="max_new_tokens"):
        onnx_greedy(session, prompt, -1, wrapper.empty_past(2))


@pytest.mark.slow
def test_save_pretrained_loads_back_with_automodel(model, tmp_path):
    """A few seconds: transformers' from_pretrained and generate (imports included)."""
    folder = save_pretrained(model, tmp_path / "hf")
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    hf = load_pretrained(folder)
    assert type(hf).__name__ == "GPT2LMHeadModel"
    ids = torch.randint(0, 40, (2, 11), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, model(ids), atol=1e-5, rtol=0)
    out = hf.generate(ids[:, :4], max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(out, greedy(model, ids[:, :4], 6))
