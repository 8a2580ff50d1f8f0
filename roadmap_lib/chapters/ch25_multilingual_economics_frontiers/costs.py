"""Chapter 25's worked cost examples: published model configurations, and a measured throughput.

Parameter counts come from the published architectures (:func:`llama_params`, and :func:`roadmap_lib.scaling.gpt_param_counts` for GPT-3, both tested
against transformers models built on the ``meta`` device); token counts and reported GPU-hours are the papers' own figures,
cited in the chapter. Hardware numbers are parameters the reader can change.
"""

from __future__ import annotations

import torch

from roadmap_lib.economics import Hardware
from roadmap_lib.generation import greedy
from roadmap_lib.measure import time_call
from roadmap_lib.models import GPTConfig
from roadmap_lib.scaling import gpt_param_counts

#: NVIDIA's A100 datasheet: 312 TFLOP/s dense BF16; 400 W board power (SXM). The price is an
#: assumption for illustration, not a quote.
A100 = Hardware("A100 (BF16 dense)", peak_flops=312e12, price_per_hour=2.0, watts=400.0)

#: Published configurations (transformers config kwargs), training tokens, and what the paper reports.
MODELS = {
    "GPT-3 175B": {"family": "gpt2", "config": {"n_embd": 12288, "n_layer": 96, "n_head": 96, "n_positions": 2048,
                                                    "vocab_size": 50257},
                   "tokens": 300e9, "cite": "brown2020gpt3", "reported_flops": 3.64e3 * 1e15 * 86400},
    "Llama 2 7B": {"family": "llama", "config": {"hidden_size": 4096, "intermediate_size": 11008,
                                                     "num_hidden_layers": 32, "num_attention_heads": 32,
                                                     "num_key_value_heads": 32, "vocab_size": 32000},
                   "tokens": 2e12, "cite": "touvron2023llama2", "reported_gpu_hours": 184320},
    "Llama 2 70B": {"family": "llama", "config": {"hidden_size": 8192, "intermediate_size": 28672,
                                                      "num_hidden_layers": 80, "num_attention_heads": 64,
                                                      "num_key_value_heads": 8, "vocab_size": 32000},
                    "tokens": 2e12, "cite": "touvron2023llama2", "reported_gpu_hours": 1720320},
}


def llama_params(hidden_size: int, intermediate_size: int, num_hidden_layers: int,
                 num_attention_heads: int, num_key_value_heads: int, vocab_size: int) -> int:
    """Exact parameters of transformers' ``LlamaForCausalLM`` (untied head, no biases)."""
    d, kv = hidden_size, hidden_size // num_attention_heads * num_key_value_heads
    attn = 2 * d * d + 2 * d * kv  # q and o: d x d; k and v: d x (kv heads x head dim)
    mlp = 3 * d * intermediate_size  # gate, up, down
    return num_hidden_layers * (attn + mlp + 2 * d) + d + 2 * vocab_size * d


def published_params(name: str) -> int:
    """Parameters of a model in :data:`MODELS`, counted from its published configuration."""
    if name not in MODELS:
        raise ValueError(f"name: expected one of {sorted(MODELS)}, got {name!r}")
    spec = MODELS[name]
    if spec["family"] == "llama":
        return llama_params(**spec["config"])
    c = spec["config"]
    return gpt_param_counts(GPTConfig(vocab_size=c["vocab_size"], context_length=c["n_positions"],
                                      d_model=c["n_embd"], n_layers=c["n_layer"], n_heads=c["n_head"]))["total"]


def decode_throughput(model, vocab_size: int, batch: int, new_tokens: int = 48, prompt: int = 8,
                      repeats: int = 2) -> float:
    """Generated tokens per second (all rows together) of greedy decoding with a KV cache."""
    ids = torch.randint(0, vocab_size, (batch, prompt), generator=torch.Generator().manual_seed(0))
    seconds = time_call(lambda: greedy(model, ids, new_tokens, use_cache=True), repeats=repeats)
    return batch * new_tokens / seconds
