"""Llama against transformers' LlamaForCausalLM with the same random weights."""

import pytest
import torch
from transformers import LlamaConfig as HFLlamaConfig
from transformers import LlamaForCausalLM

from roadmap_lib.generation import greedy
from roadmap_lib.models import Llama, LlamaConfig
from roadmap_lib.models.hf import llama_from_hf, llama_to_hf


def _hf(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=67, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
               num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=40,
               initializer_range=0.2, rope_parameters={"rope_type": "default", "rope_theta": 500.0})
    model = LlamaForCausalLM(HFLlamaConfig(**{**cfg, **kw})).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("kw", [{}, {"num_key_value_heads": 6}, {"num_key_value_heads": 1},
                                {"tie_word_embeddings": True}, {"head_dim": 16}])
def test_logits_match_transformers(kw):
    hf = _hf(**kw)
    ours = llama_from_hf(hf)
    ids = torch.randint(0, 67, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=0)


def test_roundtrip_and_greedy():
    torch.manual_seed(0)
    ours = Llama(LlamaConfig(vocab_size=50, context_length=24, d_model=32, n_layers=2, n_heads=4,
                             n_kv_heads=2))
    hf = llama_to_hf(ours)
    ids = torch.randint(0, 50, (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=0)
        theirs = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=15,
                             do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(greedy(ours, ids, 15), theirs)
    back = llama_from_hf(hf)
    for k, v in ours.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k


def test_kv_cache_and_context_error():
    ours = llama_from_hf(_hf())
    ids = torch.randint(0, 67, (2, 12), generator=torch.Generator().manual_seed(3))
    cache = ours.new_cache()
    with torch.no_grad():
        full = ours(ids)
        parts = [ours(ids[:, :5], cache)] + [ours(ids[:, t : t + 1], cache) for t in range(5, 12)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="exceeds the model's context length 40"):
        ours(torch.zeros(1, 41, dtype=torch.long))


def test_llama_config_defaults():
    c = LlamaConfig(d_model=96, n_heads=4)
    assert c.n_kv_heads == 4 and c.head_dim == 24 and c.d_ff == 256  # 8/3 * 96 = 256
