"""QLoRA: an NF4-frozen base plus float LoRA factors. Same outputs as LoRA on the dequantised
weights, gradients to the factors only, the frozen base's bytes, and what merging into NF4 does."""

import copy

import pytest
import torch
from torch import nn

from roadmap_lib import peft as rp
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.peft.qlora import apply_qlora, frozen_base_nbytes, merge_qlora
from roadmap_lib.quantization import (
    QuantizedLinear,
    model_nbytes,
    nf4_absmax,
    nf4_code_book,
    quantize_nf4,
)

QV = ["q_proj", "v_proj"]
IDS = torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(1))


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=40, context_length=16, d_model=64, n_layers=2, n_heads=4)).eval()


def trained_qlora(targets=QV, r=4, use_dora=False, seed=0):
    """A QLoRA model whose B is non-zero (as after training), so the adapter changes the output."""
    model = apply_qlora(tiny_gpt(seed), rp.LoRAConfig(targets, r=r, alpha=2.0 * r, use_dora=use_dora))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for layer in rp.lora_layers(model).values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.1)
            if layer.lora_magnitude is not None:
                layer.lora_magnitude.mul_(1 + 0.1 * torch.randn(layer.lora_magnitude.shape, generator=g))
    return model


def dequantised_lora_twin(qmodel):
    """The same network with float nn.Linear layers holding dequant(W_nf4), and the same adapters."""
    twin = copy.deepcopy(qmodel)
    for name, layer in list(twin.named_modules()):
        if isinstance(layer, QuantizedLinear):
            lin = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
            with torch.no_grad():
                lin.weight.copy_(layer.dequantized_weight())
                lin.bias.copy_(layer.bias)
            twin.set_submodule(name, lin.requires_grad_(False))
    return twin


@pytest.mark.parametrize("use_dora", [False, True])
def test_forward_is_dequantised_base_plus_lora(use_dora):
    q = trained_qlora(use_dora=use_dora)
    twin = dequantised_lora_twin(q)
    with torch.no_grad():
        yq, yt = q(IDS), twin(IDS)
    assert not torch.allclose(yq, tiny_gpt()(IDS), atol=1e-3)  # the adapter and NF4 both matter
    torch.testing.assert_close(yq, yt, atol=1e-5, rtol=1e-5)


def test_only_the_lora_factors_get_gradients():
    q = trained_qlora(targets=["q_proj", "v_proj", "down_proj"])
    trainable = {n for n, p in q.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    assert all(not b.requires_grad for b in q.buffers())  # the NF4 codes are buffers
    emb = q.wte.weight.detach().clone().requires_grad_(True)  # a leaf in front of every block
    q.wte.weight = nn.Parameter(emb)
    q(IDS).logsumexp(-1).mean().backward()
    for n, p in q.named_parameters():
        if n.endswith(("lora_A", "lora_B")):
            assert p.grad is not None and p.grad.abs().sum() > 0, n
    # the gradient flows *through* the frozen NF4 layers down to the embedding
    assert q.wte.weight.grad is not None and q.wte.weight.grad.abs().sum() > 0


def test_frozen_base_bytes_are_about_a_quarter_of_float32():
    """Per 64x64 layer with bias: 2048 bytes of packed codes, 64 absmax codes, one float32
    second-level scale, one float32 offset, 256 bytes of bias; the whole model's linear layers
    shrink from 32 bits per weight to about 4.127 (plus float32 biases)."""
    float_model = tiny_gpt()
    float_linear = sum(m.weight.numel() * 4 + m.bias.numel() * 4 for n, m in float_model.named_modules()
                       if isinstance(m, nn.Linear) and n != "lm_head")
    q = trained_qlora()
    nf4 = frozen_base_nbytes(q)
    per_layer = {n: m.nbytes for n, m in q.named_modules() if isinstance(m, QuantizedLinear)}
    assert per_layer["blocks.0.attn.o_proj"] == 64 * 64 // 2 + 64 + 4 + 4 + 64 * 4
    assert 0.13 < nf4 / float_linear < 0.15  # measured 0.139 (4.127/32 = 0.129, plus the biases)
    assert model_nbytes(q) < model_nbytes(float_model) / 2


def test_merge_dequantized_is_exact_and_requantized_is_not():
    q = trained_qlora()
    with torch.no_grad():
        y = q(IDS)
    exact = merge_qlora(copy.deepcopy(q), dequantize=True)
    assert not rp.lora_layers(exact) and isinstance(exact.blocks[0].attn.q_proj, nn.Linear)
    with torch.no_grad():
        torch.testing.assert_close(exact(IDS), y, atol=1e-5, rtol=1e-5)

    requant = merge_qlora(copy.deepcopy(q))
    layer = requant.blocks[0].attn.q_proj
    assert isinstance(layer, QuantizedLinear) and layer.fmt == "nf4"
    assert model_nbytes(requant) < model_nbytes(q)  # A and B are gone, the base is as small
    # the merged weight is NF4(dequant(W) + s B A), code for code
    w = exact.blocks[0].attn.q_proj.weight
    assert torch.equal(layer.codes, quantize_nf4(w).packed)
    # ... so it moved by a rounding error, at most half the widest NF4 gap times the block absmax
    err = (layer.dequantized_weight() - w).abs().reshape(-1, 64)
    bound = nf4_absmax(quantize_nf4(w)).unsqueeze(1) * nf4_code_book().diff().max() / 2 * 1.05
    assert torch.all(err <= bound) and err.max() > 0
    with torch.no_grad():
        assert (requant(IDS) - y).abs().max() > 1e-4  # and the outputs are no longer exact


def test_merge_into_a_quantized_base_is_refused_by_lora_merge():
    q = trained_qlora()
    with pytest.raises(TypeError, match="quantized"):
        rp.merge_adapters(q)


def test_bad_input():
    with pytest.raises(TypeError, match="config"):
        apply_qlora(tiny_gpt(), {"target_modules": QV})
    with pytest.raises(ValueError, match="no LoRA layer on a quantised base"):
        merge_qlora(tiny_gpt())
    with pytest.raises(ValueError, match="no quantised linear"):
        frozen_base_nbytes(tiny_gpt())


class _One(nn.Module):
    def __init__(self, proj):
        super().__init__()
        self.proj = proj

    def forward(self, x):
        return self.proj(x)


def test_matches_peft_lora_on_a_bitsandbytes_nf4_layer():
    """peft's LoRA on bitsandbytes' ``Linear4bit`` (NF4, double quantised, blocks of 64; it runs on
    CPU tensors here) against ours on the same float weight: same outputs and same A/B gradients.
    (peft's merge into a 4-bit layer does not run on CPU in this install, so merging is tested
    above against its definition instead.)"""
    bnb = pytest.importorskip("bitsandbytes")
    peft = pytest.importorskip("peft")
    g = torch.Generator().manual_seed(3)
    w, b = torch.randn(64, 128, generator=g), torch.randn(64, generator=g)
    lin4 = bnb.nn.Linear4bit(128, 64, bias=True, quant_type="nf4", compress_statistics=True,
                             compute_dtype=torch.float32)
    lin4.weight = bnb.nn.Params4bit(w.clone(), requires_grad=False, quant_type="nf4",
                                    compress_statistics=True, blocksize=64)
    lin4.bias = nn.Parameter(b.clone())
    theirs = peft.get_peft_model(_One(lin4.to("cpu")),
                                 peft.LoraConfig(target_modules=["proj"], r=4, lora_alpha=8))
    float_layer = nn.Linear(128, 64)
    with torch.no_grad():
        float_layer.weight.copy_(w)
        float_layer.bias.copy_(b)
    ours = apply_qlora(_One(float_layer), rp.LoRAConfig(["proj"], r=4, alpha=8.0), exclude=None)
    mine, other = rp.lora_layers(ours)["proj"], theirs.base_model.model.proj
    with torch.no_grad():
        a, bb = torch.randn(4, 128, generator=g) * 0.1, torch.randn(64, 4, generator=g) * 0.1
        mine.lora_A.copy_(a)
        mine.lora_B.copy_(bb)
        other.lora_A["default"].weight.copy_(a)
        other.lora_B["default"].weight.copy_(bb)
    x = torch.randn(5, 128, generator=g)
    y_ours, y_theirs = ours(x), theirs(x)
    torch.testing.assert_close(y_ours, y_theirs, atol=1e-5, rtol=1e-5)
    assert (y_ours - float_layer(x)).abs().max() > 0.1  # NF4 and the adapter both show
    y_ours.square().sum().backward()
    y_theirs.square().sum().backward()
    torch.testing.assert_close(mine.lora_A.grad, other.lora_A["default"].weight.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mine.lora_B.grad, other.lora_B["default"].weight.grad, atol=1e-4, rtol=1e-4)
