"""GPT against transformers' GPT2LMHeadModel with the same random weights."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from roadmap_lib.generation import greedy, sample
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.models.hf import gpt_from_hf, gpt_to_hf


def _hf(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=61, n_positions=32, n_embd=48, n_layer=3, n_head=4, initializer_range=0.2,
               resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(GPT2Config(**{**cfg, **kw})).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a mix-up shows
        for name, p in model.named_parameters():
            if "ln" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("kw", [{}, {"n_inner": 40}, {"tie_word_embeddings": False}])
def test_logits_match_transformers(kw):
    hf = _hf(**kw)
    ours = gpt_from_hf(hf)
    ids = torch.randint(0, 61, (3, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=0)


def test_roundtrip_to_transformers():
    torch.manual_seed(0)
    ours = GPT(GPTConfig(vocab_size=50, context_length=16, d_model=32, n_layers=2, n_heads=2))
    hf = gpt_to_hf(ours)
    ids = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=0)
    back = gpt_from_hf(hf)
    for k, v in ours.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k


def test_greedy_generation_identical():
    hf = _hf()
    ours = gpt_from_hf(hf)
    ids = torch.randint(0, 61, (2, 4), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        theirs = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20,
                             do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(greedy(ours, ids, 20), theirs)


def test_kv_cache_matches_full_forward():
    ours = gpt_from_hf(_hf())
    ids = torch.randint(0, 61, (2, 20), generator=torch.Generator().manual_seed(3))
    cache = ours.new_cache()
    with torch.no_grad():
        full = ours(ids)
        parts = [ours(ids[:, :7], cache)] + [ours(ids[:, t : t + 1], cache) for t in range(7, 20)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=0)
    prompt = ids[:, :4]
    assert torch.equal(greedy(ours, prompt, 16, use_cache=True), greedy(ours, prompt, 16))
    a = sample(ours, prompt, 16, use_cache=True, generator=torch.Generator().manual_seed(0))
    b = sample(ours, prompt, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_too_long_sequence_is_a_clear_error():
    model = GPT(GPTConfig(vocab_size=10, context_length=8, d_model=16, n_layers=1, n_heads=2))
    with pytest.raises(ValueError, match="sequence length 9 exceeds the model's context length 8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    cache = model.new_cache()
    model(torch.zeros(1, 8, dtype=torch.long), cache)
    with pytest.raises(ValueError, match=r"9 \(8 cached \+ 1 new\)"):
        model(torch.zeros(1, 1, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="integer tensor"):
        model(torch.zeros(1, 3))
    # generation crops to the window and can run past it
    out = greedy(model, torch.zeros(1, 8, dtype=torch.long), 5, context_length=8)
    assert out.shape == (1, 13)


def test_config_validation_and_tying():
    with pytest.raises(ValueError, match="n_heads"):
        GPTConfig(d_model=30, n_heads=4)
    m = GPT(GPTConfig(vocab_size=10, context_length=8, d_model=16, n_layers=1, n_heads=2))
    assert m.lm_head.weight is m.wte.weight
    assert m.num_parameters() == sum(p.numel() for p in m.parameters())
