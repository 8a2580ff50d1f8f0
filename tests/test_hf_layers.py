"""Whole GPT-2, BERT and Llama layers from transformers (tiny configs, random weights, nothing
downloaded) against our TransformerBlock loaded with the same weights."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, GPT2Config, LlamaConfig
from transformers.models.bert.modeling_bert import BertLayer
from transformers.models.gpt2.modeling_gpt2 import GPT2Block
from transformers.models.llama.modeling_llama import (
    LlamaDecoderLayer,
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
)

from roadmap_lib.attention import KVCache, causal_mask, padding_mask
from roadmap_lib.hf_layers import block_config_from_hf, block_from_hf, hf_state_dict

TOL = 1e-5


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (norm weights and biases too, so a swapped tensor shows)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (1.0 if p.ndim == 1 else 0.0) * 0.5)
    return module.eval()


def hf_mask(allowed: torch.Tensor) -> torch.Tensor:
    """Boolean (batch, 1, Lq, Lk) 'may attend' -> transformers' additive float mask."""
    return torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)


def maxdiff(a, b) -> float:
    return (a - b).abs().max().item()


def gpt2_layer():
    cfg = GPT2Config(n_embd=32, n_head=4, n_layer=1, n_positions=64)
    cfg._attn_implementation = "eager"
    return cfg, randomize(GPT2Block(cfg, layer_idx=0))


def bert_layer():
    cfg = BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=48)
    cfg._attn_implementation = "eager"
    return cfg, randomize(BertLayer(cfg))


def llama_layer(kv_heads=2):
    cfg = LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=kv_heads,
                      intermediate_size=48, rms_norm_eps=1e-6, max_position_embeddings=64)
    cfg._attn_implementation = "eager"
    return cfg, randomize(LlamaDecoderLayer(cfg, layer_idx=0))


def hf_rotary(cfg):
    """A rotary(q, k, positions) callable made of transformers' own Llama RoPE."""
    rope = LlamaRotaryEmbedding(cfg)

    def rotary(q, k, positions):
        cos, sin = rope(q, positions[None])
        return apply_rotary_pos_emb(q, k, cos, sin)

    return rotary


def test_gpt2_block_matches():
    cfg, layer = gpt2_layer()
    block = block_from_hf(layer, cfg).eval()
    x = torch.randn(2, 7, 32)
    pad = padding_mask(torch.tensor([7, 5]))
    allowed = causal_mask(7)[None, None] & ~pad[:, None, None, :]
    with torch.no_grad():
        ref = layer(x, attention_mask=hf_mask(allowed))
        ref = ref[0] if isinstance(ref, tuple) else ref
        ours = block(x, key_padding_mask=pad)
    # rows of padded queries are meaningless in both; compare the real positions
    assert maxdiff(ours[0], ref[0]) <= TOL
    assert maxdiff(ours[1, :5], ref[1, :5]) <= TOL


def test_bert_layer_matches():
    cfg, layer = bert_layer()
    block = block_from_hf(layer, cfg).eval()
    assert not block.config.prenorm and block.config.norm_eps == 1e-12
    x = torch.randn(2, 6, 32)
    pad = padding_mask(torch.tensor([6, 3]))
    with torch.no_grad():
        ref = layer(x, attention_mask=hf_mask(~pad[:, None, None, :]))
        ref = ref[0] if isinstance(ref, tuple) else ref
        ours = block(x, key_padding_mask=pad)
    assert maxdiff(ours, ref) <= TOL


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_llama_decoder_layer_matches(kv_heads):
    cfg, layer = llama_layer(kv_heads)
    rotary = hf_rotary(cfg)
    block = block_from_hf(layer, cfg, rotary=rotary).eval()
    assert block.config.n_kv_heads == kv_heads and block.config.gated
    x = torch.randn(2, 9, 32)
    pos = torch.arange(9)
    cos, sin = LlamaRotaryEmbedding(cfg)(x, pos[None])
    with torch.no_grad():
        ref = layer(x, attention_mask=hf_mask(causal_mask(9)[None, None]),
                    position_embeddings=(cos, sin))
        ref = ref[0] if isinstance(ref, tuple) else ref
        ours = block(x)
        assert maxdiff(ours, ref) <= TOL
        # and token by token with a KV cache
        cache = KVCache()
        steps = torch.cat([block(x[:, t:t + 1], cache=cache) for t in range(9)], 1)
    assert maxdiff(steps, ref) <= TOL


@pytest.mark.parametrize("make", [gpt2_layer, bert_layer, llama_layer])
def test_weights_round_trip(make):
    cfg, layer = make()
    block = block_from_hf(layer, cfg)
    back = hf_state_dict(block, cfg.model_type)
    theirs = layer.state_dict()
    assert set(back) == set(theirs)
    for name, tensor in theirs.items():
        assert torch.equal(back[name], tensor), name


def test_unsupported_configs_raise():
    with pytest.raises(ValueError, match="config: expected a model_type in"):
        block_config_from_hf("t5")
    cfg = BertConfig(hidden_size=32, num_attention_heads=4, hidden_act="relu")
    with pytest.raises(ValueError, match=r"config.hidden_act: expected 'gelu', got 'relu'"):
        block_config_from_hf(cfg)
    for flag in ({"scale_attn_weights": False}, {"scale_attn_by_inverse_layer_idx": True},
                 {"reorder_and_upcast_attn": True}):
        with pytest.raises(ValueError, match="scale_attn|attention variants"):
            block_config_from_hf(GPT2Config(n_embd=32, n_head=4, **flag))
