"""IA³: vectors that start at one, scale a layer's output (keys, values) or its input (the FFN
down-projection), fold into the weights and back. (Parity with peft: test_peft_convert.py.)"""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from roadmap_lib import peft as rp
from roadmap_lib.measure import count_parameters
from roadmap_lib.models import Llama, LlamaConfig

IDS = torch.randint(0, 40, (2, 10), generator=torch.Generator().manual_seed(1))
TARGETS, FEEDFORWARD = ["k_proj", "v_proj", "down_proj"], ["down_proj"]


def tiny_llama(seed=0):
    torch.manual_seed(seed)
    return Llama(LlamaConfig(vocab_size=40, context_length=16, d_model=32, n_layers=2, n_heads=4,
                             n_kv_heads=2, d_ff=48)).eval()


def tiny_gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=40, n_positions=16, n_embd=32, n_layer=2,
                                      n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                      bos_token_id=0, eos_token_id=0)).eval()


def jitter(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=g))


def test_output_and_input_scaling():
    torch.manual_seed(0)
    linear = torch.nn.Linear(6, 4)
    x = torch.randn(3, 6)
    out = rp.IA3Linear(linear)
    ff = rp.IA3Linear(linear, feedforward=True)
    assert out.ia3.shape == (4,) and ff.ia3.shape == (6,)
    with torch.no_grad():
        out.ia3.copy_(torch.arange(1.0, 5.0))
        ff.ia3.copy_(torch.arange(1.0, 7.0))
    torch.testing.assert_close(out(x), linear(x) * torch.arange(1.0, 5.0))  # bias scaled too
    torch.testing.assert_close(ff(x), linear(x * torch.arange(1.0, 7.0)))


def test_starts_unchanged_and_trains_only_the_vectors():
    base = tiny_llama()
    with torch.no_grad():
        want = base(IDS)
    model = rp.apply_ia3(base, TARGETS, FEEDFORWARD)
    with torch.no_grad():
        torch.testing.assert_close(model(IDS), want, atol=0, rtol=0)
    # per layer: k and v outputs (2 kv heads · 8 = 16 each) + down_proj's input (48)
    assert count_parameters(model, trainable_only=True) == 2 * (16 + 16 + 48)
    assert {n.rsplit(".", 2)[-2] for n, p in model.named_parameters() if p.requires_grad} == {
        "k_proj", "v_proj", "down_proj"}
    layers = rp.ia3_layers(model)
    assert layers["blocks.0.ffn.down_proj"].feedforward
    assert not layers["blocks.0.attn.k_proj"].feedforward


@pytest.mark.parametrize("which", ["llama", "gpt2"])
def test_merge_unmerge_exact(which):
    if which == "llama":
        model = rp.apply_ia3(tiny_llama(), TARGETS, FEEDFORWARD)
        run = model
    else:  # Conv1D: the fused c_attn scales q, k and v; mlp.c_proj scales its input
        model = rp.apply_ia3(tiny_gpt2(), ["c_attn", "mlp.c_proj"], ["mlp.c_proj"])
        def run(ids):
            return model(ids).logits
    jitter(model)
    before = {n: layer.base.weight.detach().clone() for n, layer in rp.ia3_layers(model).items()}
    with torch.no_grad():
        unmerged = run(IDS)
        rp.merge_adapters(model)
        torch.testing.assert_close(run(IDS), unmerged, atol=1e-6, rtol=0)
        rp.unmerge_adapters(model)
        torch.testing.assert_close(run(IDS), unmerged, atol=1e-6, rtol=0)
    for n, layer in rp.ia3_layers(model).items():
        torch.testing.assert_close(layer.base.weight, before[n], atol=1e-6, rtol=0)


def test_refusals():
    with pytest.raises(ValueError, match=r"feedforward_modules: expected a subset of the target "
                                         r"modules, got \['blocks.0.ffn.up_proj'"):
        rp.apply_ia3(tiny_llama(), TARGETS, ["up_proj"])
    with pytest.raises(ValueError, match=r"feedforward_modules: \['mlp'\] matched no module"):
        rp.apply_ia3(tiny_llama(), TARGETS, ["mlp"])
    model = rp.apply_ia3(tiny_llama(), TARGETS, FEEDFORWARD)
    layer = rp.ia3_layers(model)["blocks.0.attn.k_proj"]
    with pytest.raises(ValueError, match="not merged"):
        layer.unmerge()
    layer.merge()
    with pytest.raises(ValueError, match="already merged"):
        layer.merge()
    layer.unmerge()
    with torch.no_grad():
        layer.ia3[0] = 0.0
    layer.merge()
    with pytest.raises(ValueError, match="zero entries"):
        layer.unmerge()
