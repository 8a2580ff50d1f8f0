"""KV-cache arithmetic: the formula against the bytes our models' caches really allocate."""

import pytest
import torch

from roadmap_lib.inference.kv_memory import (
    LLAMA2,
    ModelShape,
    allocated_cache_bytes,
    cache_bytes,
    dtype_bytes,
    shape_of,
)
from roadmap_lib.models import GPT, GPTConfig, Llama, LlamaConfig


@pytest.mark.parametrize("n_kv", [1, 2, 4, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_formula_matches_allocated_llama_cache(n_kv, dtype):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, context_length=32, d_model=64, n_layers=2, n_heads=8,
                      n_kv_heads=n_kv)
    model = Llama(cfg).to(dtype).eval()
    cache = model.new_cache()
    with torch.no_grad():
        model(torch.randint(0, 50, (3, 11)), cache=cache)
        model(torch.randint(0, 50, (3, 1)), cache=cache)
    assert allocated_cache_bytes(cache) == cache_bytes(shape_of(cfg), 12, 3, dtype_bytes(dtype))


def test_formula_matches_gpt_cache():
    model = GPT(GPTConfig(vocab_size=20, context_length=16, d_model=32, n_layers=3, n_heads=4)).eval()
    cache = model.new_cache()
    with torch.no_grad():
        model(torch.randint(0, 20, (2, 9)), cache=cache)
    assert allocated_cache_bytes(cache) == cache_bytes(shape_of(model.config), 9, 2, 4)


def test_published_llama2_shapes_and_gqa_factor():
    seven, seventy = LLAMA2["Llama 2 7B"], LLAMA2["Llama 2 70B"]
    assert (seven.n_layers, seven.n_kv_heads, seven.head_dim) == (32, 32, 128)
    assert (seventy.n_layers, seventy.n_heads, seventy.n_kv_heads, seventy.head_dim) == (80, 64, 8, 128)
    # GQA with 8 kv heads for 64 query heads: 8x less cache than the same model without it
    assert cache_bytes(seventy.without_gqa(), 100) == 8 * cache_bytes(seventy, 100)
    # 7B in fp16: 2 * 32 layers * 4096 = 512 KiB per token
    assert cache_bytes(seven, 1) == 2 * 32 * 4096 * 2


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="n_kv_heads"):
        ModelShape("x", n_layers=2, n_heads=8, n_kv_heads=3, hidden=64)
    with pytest.raises(ValueError, match="seq_len"):
        cache_bytes(LLAMA2["Llama 2 7B"], -1)
    with pytest.raises(ValueError, match="cache: layer 0"):
        allocated_cache_bytes(GPT(GPTConfig(vocab_size=5, context_length=4, d_model=8, n_layers=1,
                                            n_heads=2)).new_cache())
