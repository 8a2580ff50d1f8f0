"""Houlsby bottleneck adapters: inserted after a named sublayer, identity at the start, only the
adapters (and optionally the norms) train; on our GPT and on transformers' GPT-2."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from roadmap_lib import peft as rp
from roadmap_lib.measure import count_parameters
from roadmap_lib.models import GPT, GPTConfig

IDS = torch.randint(0, 40, (2, 10), generator=torch.Generator().manual_seed(1))


def tiny_gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=40, context_length=16, d_model=32, n_layers=2,
                         n_heads=4)).eval()


def test_adapter_is_the_houlsby_residual_mlp():
    torch.manual_seed(0)
    adapter = rp.BottleneckAdapter(8, 3, activation="gelu")
    h = torch.randn(2, 5, 8)
    torch.testing.assert_close(adapter(h), h, atol=0, rtol=0)  # zero up-projection: identity
    with torch.no_grad():
        adapter.up.weight.normal_()
    want = h + adapter.up(torch.nn.functional.gelu(adapter.down(h)))
    torch.testing.assert_close(adapter(h), want)


def test_after_attention_and_ffn_of_our_gpt():
    base = tiny_gpt()
    with torch.no_grad():
        want = base(IDS)
    model = rp.apply_adapters(base, ["attn", "ffn"], bottleneck=4)
    with torch.no_grad():
        torch.testing.assert_close(model(IDS), want, atol=0, rtol=0)
    # 2 layers · 2 adapters · (down 32·4 + 4, up 4·32 + 32)
    assert count_parameters(model, trainable_only=True) == 2 * 2 * (132 + 160)
    assert set(rp.adapter_layers(model)) == {"blocks.0.attn", "blocks.0.ffn", "blocks.1.attn",
                                             "blocks.1.ffn"}
    for layer in rp.adapter_layers(model).values():
        with torch.no_grad():
            layer.adapter.up.weight.normal_(0, 0.1)
    with torch.no_grad():
        assert (model(IDS) - want).abs().max() > 1e-3
    loss = model(IDS).logsumexp(-1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert model.wte.weight.grad is None
    plain = rp.unload(model, merge=False)
    with torch.no_grad():
        torch.testing.assert_close(plain(IDS), want, atol=0, rtol=0)


def test_transformers_attention_returns_a_tuple():
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=40, n_positions=16, n_embd=32, n_layer=2, n_head=4,
                                    bos_token_id=0, eos_token_id=0)).eval()
    with torch.no_grad():
        want = hf(IDS).logits
    rp.apply_adapters(hf, ["attn", "mlp"], bottleneck=4, train_norms=True)
    with torch.no_grad():
        torch.testing.assert_close(hf(IDS).logits, want, atol=0, rtol=0)
    norms = {n for n, p in hf.named_parameters() if p.requires_grad and "adapter" not in n}
    blocks = {f"transformer.h.{i}.ln_{j}.{t}" for i in range(2) for j in (1, 2)
              for t in ("weight", "bias")}
    assert norms == blocks | {"transformer.ln_f.weight", "transformer.ln_f.bias"}


def test_refusals():
    with pytest.raises(ValueError, match="bottleneck: expected an int >= 1, got 0"):
        rp.apply_adapters(tiny_gpt(), ["ffn"], bottleneck=0)
    with pytest.raises(ValueError, match="activation: expected one of"):
        rp.apply_adapters(tiny_gpt(), ["ffn"], activation="tanh")
    with pytest.raises(ValueError, match=r"after: \['mlp'\] matched no module of GPT; modules"):
        rp.apply_adapters(tiny_gpt(), ["mlp"])
    with pytest.raises(ValueError, match="d_model: 'blocks.0.attn_norm' .* pass d_model"):
        rp.apply_adapters(tiny_gpt(), ["attn_norm"])
    model = rp.apply_adapters(tiny_gpt(), ["ffn"], 4)
    with pytest.raises(TypeError, match="cannot be merged"):
        rp.merge_adapters(model)
