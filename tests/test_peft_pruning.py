"""Pruning masks: the sparsity asked for is the sparsity measured (zeros counted), the right
weights go, and structured pruning removes whole heads and neurons."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import GPT2Config, GPT2LMHeadModel

from roadmap_lib import peft as rp
from roadmap_lib.models import GPT, GPTConfig, Llama, LlamaConfig

IDS = torch.randint(0, 40, (2, 10), generator=torch.Generator().manual_seed(1))


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=40, context_length=16, d_model=32, n_layers=2,
                         n_heads=4)).eval()


def tiny_llama():
    torch.manual_seed(0)
    return Llama(LlamaConfig(vocab_size=40, context_length=16, d_model=32, n_layers=2, n_heads=4,
                             n_kv_heads=2, d_ff=48)).eval()


def params(model, masks):
    named = dict(model.named_parameters())
    return {n: named[n] for n in masks}


@settings(max_examples=20, deadline=None)
@given(target=st.floats(0, 1), scope=st.sampled_from(["global", "layer"]),
       seed=st.integers(0, 100))
def test_magnitude_sparsity_is_exact(target, scope, seed):
    model = tiny_gpt(seed)
    masks = rp.magnitude_masks(model, target, scope=scope)
    assert "lm_head.weight" not in masks  # tied to the embedding: left alone by default
    weights = params(model, masks)
    total = sum(w.numel() for w in weights.values())
    kept = torch.cat([w.detach().abs()[m] for w, m in zip(weights.values(), masks.values())])
    dropped = torch.cat([w.detach().abs()[~m] for w, m in zip(weights.values(), masks.values())])
    rp.apply_masks(model, masks)
    if scope == "global":
        assert rp.sparsity(weights) == round(target * total) / total
        if len(dropped) and len(kept):
            assert dropped.max() <= kept.min()  # the smallest magnitudes went
    else:
        for w in weights.values():
            assert rp.sparsity(w) == round(target * w.numel()) / w.numel()


def test_sparsity_counts_zeros():
    assert rp.sparsity(torch.tensor([0.0, 1.0, 0.0, 2.0])) == 0.5
    assert rp.sparsity({"a": torch.zeros(3), "b": torch.ones(1)}) == 0.75
    model = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.zero_()
    assert rp.sparsity(model) == 8 / 12  # weights only, not biases


def test_two_four_on_our_gpt_and_gpt2_conv1d():
    model = tiny_gpt()
    masks = rp.semi_structured_masks(model)
    rp.apply_masks(model, masks)
    for name, w in params(model, masks).items():
        groups = w.detach().view(w.shape[0], -1, 4)
        assert ((groups == 0).sum(-1) == 2).all(), name
    assert rp.sparsity(params(model, masks)) == 0.5
    # the 2 largest of each 4 survive
    w = torch.tensor([[0.1, -3.0, 2.0, 0.5, 4.0, 0.0, -0.2, 1.0]])
    lin = torch.nn.Linear(8, 1)
    with torch.no_grad():
        lin.weight.copy_(w)
    holder = torch.nn.Sequential(lin)
    keep = rp.semi_structured_masks(holder)["0.weight"]
    assert keep.tolist() == [[False, True, True, False, True, False, False, True]]
    # Conv1D stores (in, out): groups still run along the inputs
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=40, n_positions=16, n_embd=32, n_layer=1, n_head=4,
                                    bos_token_id=0, eos_token_id=0))
    masks = rp.semi_structured_masks(hf, targets=["c_attn"])
    m = masks["transformer.h.0.attn.c_attn.weight"]
    assert m.shape == (32, 96) and (m.T.reshape(96, 8, 4).sum(-1) == 2).all()


def test_head_pruning_removes_whole_heads():
    model = tiny_gpt()
    masks = rp.head_masks(model, 0.5)
    rp.apply_masks(model, masks)
    with torch.no_grad():
        before = model(IDS)
    for i in range(2):
        attn = model.blocks[i].attn
        o = attn.o_proj.weight.view(32, 4, 8)
        dead = (o == 0).all(dim=(0, 2))
        assert int(dead.sum()) == 2
        assert rp.sparsity(attn.o_proj.weight) == 0.5
        # a pruned head's query, key and value weights no longer matter
        with torch.no_grad():
            for h in dead.nonzero().flatten().tolist():
                attn.q_proj.weight[h * 8:(h + 1) * 8] = torch.randn(8, 32)
                attn.v_proj.weight[h * 8:(h + 1) * 8] = torch.randn(8, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(IDS), before, atol=1e-6, rtol=0)


def test_neuron_pruning_removes_whole_neurons():
    model = tiny_llama()
    masks = rp.neuron_masks(model, 0.25)
    rp.apply_masks(model, masks)
    with torch.no_grad():
        before = model(IDS)
    for i in range(2):
        ffn = model.blocks[i].ffn
        dead = (ffn.down_proj.weight == 0).all(0)
        assert int(dead.sum()) == 12  # a quarter of d_ff = 48
        assert rp.sparsity(ffn.up_proj.weight) == rp.sparsity(ffn.gate_proj.weight) == 0.25
        with torch.no_grad():
            ffn.up_proj.weight[dead] = torch.randn(int(dead.sum()), 32)
    with torch.no_grad():
        torch.testing.assert_close(model(IDS), before, atol=0, rtol=0)


def test_refusals():
    model = tiny_gpt()
    with pytest.raises(ValueError, match=r"sparsity: expected a fraction in \[0, 1\], got 1.5"):
        rp.magnitude_masks(model, 1.5)
    with pytest.raises(ValueError, match="scope: expected 'global' or 'layer', got 'row'"):
        rp.magnitude_masks(model, 0.5, scope="row")
    with pytest.raises(ValueError, match="n, m: expected ints with 0 < n <= m, got n=5, m=4"):
        rp.semi_structured_masks(model, 5, 4)
    with pytest.raises(ValueError, match="has 32 inputs, expected a multiple of m=5"):
        rp.semi_structured_masks(model, 2, 5)
    with pytest.raises(ValueError, match="masks: 'nope.weight' is not a parameter of GPT"):
        rp.apply_masks(model, {"nope.weight": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"expected a bool tensor of shape \(32, 32\)"):
        rp.apply_masks(model, {"blocks.0.attn.q_proj.weight": torch.ones(32, 32)})
    with pytest.raises(ValueError, match="has no MultiHeadAttention layer"):
        rp.head_masks(torch.nn.Linear(2, 2), 0.5)
    with pytest.raises(TypeError, match="obj: expected a tensor"):
        rp.sparsity([1, 2])
