"""Prompt tuning and prefix tuning generalise a real prompt: set the virtual tokens to the
embeddings (prompt) or the keys and values (prefix) of real tokens and the model computes exactly
what it computes with those tokens in front. (Parity with peft: test_peft_convert.py.)"""

import pytest
import torch

from roadmap_lib import peft as rp
from roadmap_lib.measure import count_parameters
from roadmap_lib.models import GPT, GPTConfig, Llama, LlamaConfig

IDS = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(1))
PROMPT = torch.tensor([5, 17, 3])


def tiny(kind):
    torch.manual_seed(0)
    if kind == "gpt":
        return GPT(GPTConfig(vocab_size=40, context_length=16, d_model=32, n_layers=2,
                             n_heads=4)).eval()
    return Llama(LlamaConfig(vocab_size=40, context_length=16, d_model=32, n_layers=2, n_heads=4,
                             n_kv_heads=2, d_ff=48)).eval()


def with_prompt(model, ids):
    return model(torch.cat([PROMPT.expand(ids.shape[0], -1), ids], 1))


@pytest.mark.parametrize("kind", ["gpt", "llama"])
def test_prompt_from_token_ids_equals_those_tokens_in_front(kind):
    model = tiny(kind)
    with torch.no_grad():
        want = with_prompt(model, IDS)
    tuned = rp.PromptTuning(model, 3, init=PROMPT)
    with torch.no_grad():
        got = tuned(IDS)
    assert got.shape == (2, 3 + 8, 40)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert count_parameters(tuned, trainable_only=True) == 3 * 32
    tuned(IDS).sum().backward()
    assert tuned.prompt.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    # the hook is gone afterwards: the model alone is the model again
    with torch.no_grad():
        torch.testing.assert_close(model(IDS), tiny(kind)(IDS), atol=0, rtol=0)


def test_prompt_init_choices():
    model = tiny("gpt")
    g = torch.Generator().manual_seed(0)
    vocab = rp.PromptTuning(model, 4, generator=g).prompt
    assert any(torch.equal(row, model.wte.weight[i]) for row in vocab[:1] for i in range(40))
    rand = rp.PromptTuning(model, 4, init="random", generator=g).prompt
    assert rand.shape == (4, 32) and 0.005 < rand.std().item() < 0.05  # like wte's std 0.02
    assert "prompt" in dict(rp.PromptTuning(model, 2).named_parameters())
    assert "embedding.weight" not in rp.PromptTuning(model, 2).state_dict()  # no second copy


@pytest.mark.parametrize("kind", ["gpt", "llama"])
def test_prefix_from_real_keys_equals_those_tokens_in_front(kind):
    model = tiny(kind)
    cache = model.new_cache()
    with torch.no_grad():
        model(PROMPT[None], cache)  # the keys and values the 3 prompt tokens leave behind
        want = with_prompt(model, IDS)[:, 3:]
    tuned = rp.PrefixTuning(model, 3)
    kv_heads = 4 if kind == "gpt" else 2
    assert tuned.prefix.shape == (2, 2, kv_heads, 3, 8)
    with torch.no_grad():
        for i, c in enumerate(cache):
            tuned.prefix[i, 0] = c.k[0]
            tuned.prefix[i, 1] = c.v[0]
        got = tuned(IDS)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert count_parameters(tuned, trainable_only=True) == 2 * 2 * kv_heads * 3 * 8


def test_prefix_projection_and_flat_layout():
    tuned = rp.PrefixTuning(tiny("llama"), 3, projection_dim=10)
    prefix = tuned.get_prefix()
    assert prefix.shape == (2, 2, 2, 3, 8)
    flat = rp.prompt.to_flat_prefix(prefix)
    assert flat.shape == (3, 2 * 2 * 2 * 8)
    assert torch.equal(rp.prompt.from_flat_prefix(flat, prefix.shape), prefix)
    tuned(IDS).sum().backward()
    assert tuned.embedding.grad is not None and tuned.proj[0].weight.grad is not None


def test_refusals():
    model = tiny("gpt")
    with pytest.raises(ValueError, match="num_virtual_tokens: expected an int >= 1, got 0"):
        rp.PromptTuning(model, 0)
    with pytest.raises(ValueError, match="init: expected 'vocab', 'random' or a tensor"):
        rp.PromptTuning(model, 2, init="text")
    with pytest.raises(ValueError, match=r"init: expected 2 token ids, got shape \(3,\)"):
        rp.PromptTuning(model, 2, init=PROMPT)
    with pytest.raises(ValueError, match="ids: expected a \\(batch, seq\\) integer tensor"):
        rp.PromptTuning(model, 2)(IDS.float())
    with pytest.raises(ValueError, match=r"sequence length 18 \(3 cached \+ 15 new\) exceeds"):
        rp.PrefixTuning(model, 3)(torch.zeros(1, 15, dtype=torch.long))
    with pytest.raises(TypeError, match="model: expected a model with a .config"):
        rp.PrefixTuning(torch.nn.Linear(2, 2), 3)
    with pytest.raises(ValueError, match="projection_dim: expected an int >= 1, got 0"):
        rp.PrefixTuning(model, 3, projection_dim=0)
