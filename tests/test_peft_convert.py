"""Our adapters against the peft library, on the same transformers model and the same adapter
weights: logits and the adapter parameters' gradients agree within 1e-5 (fp32), for LoRA, rsLoRA,
DoRA, IA³, prompt tuning and prefix tuning, with the weights copied both ways through
``to_peft_state_dict`` / ``from_peft_state_dict``.

Each case runs on GPT-2 (``Conv1D``, fused q|k|v) and Llama (GQA, RoPE), twice: our adapters
wrapping the transformers model's own modules (``on="hf"``), and our adapters on our GPT / Llama
converted from it (``on="ours"``, the ``family`` name mapping). Nothing is downloaded.
"""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from peft import (
    IA3Config,
    LoraConfig,
    PrefixTuningConfig,
    PromptTuningConfig,
    get_peft_model,
    get_peft_model_state_dict,
    set_peft_model_state_dict,
)
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from roadmap_lib import peft as rp
from roadmap_lib.models.hf import gpt_from_hf, llama_from_hf

# peft's own forward still passes past_key_values, which transformers 5 renamed
pytestmark = [pytest.mark.filterwarnings("ignore:`past_key_values` is deprecated:FutureWarning"),
              pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing`:FutureWarning")]

VOCAB = 61
METHODS = ["lora", "rslora", "dora", "ia3", "prompt", "prefix"]
CASES = [(arch, on, method) for arch in ("gpt2", "llama") for on in ("hf", "ours")
         for method in METHODS]
TOL = 1e-5


def make_hf(arch: str):
    torch.manual_seed(0)
    if arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(
            vocab_size=VOCAB, n_positions=32, n_embd=48, n_layer=2, n_head=4,
            initializer_range=0.1, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            bos_token_id=0, eos_token_id=0))
    else:
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=VOCAB, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
            initializer_range=0.1, bos_token_id=0, eos_token_id=0, pad_token_id=0))
    with torch.no_grad():  # non-trivial norms and biases, so a mix-up shows
        for name, p in model.named_parameters():
            if "norm" in name or "ln" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


# our names for the layers peft adapts by default (GPT-2: the fused c_attn is our q, k, v)
LORA_TARGETS = {
    ("gpt2", "hf"): ["c_attn", "c_fc", "mlp.c_proj"],
    ("gpt2", "ours"): ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"],
    ("llama", "hf"): ["q_proj", "k_proj", "v_proj", "gate_proj", "down_proj"],
    ("llama", "ours"): ["q_proj", "k_proj", "v_proj", "gate_proj", "down_proj"],
}
IA3_TARGETS = {  # peft's defaults: GPT-2 c_attn + mlp.c_proj, Llama k, v, down
    ("gpt2", "hf"): (["c_attn", "mlp.c_proj"], ["mlp.c_proj"]),
    ("gpt2", "ours"): (["q_proj", "k_proj", "v_proj", "down_proj"], ["down_proj"]),
    ("llama", "hf"): (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
    ("llama", "ours"): (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
}


def adapt(base, arch, on, method):
    if method in ("lora", "rslora", "dora"):
        config = rp.LoRAConfig(LORA_TARGETS[arch, on], r=4, alpha=6,
                               use_rslora=method == "rslora", use_dora=method == "dora")
        return rp.apply_lora(base, config), LoraConfig
    if method == "ia3":
        return rp.apply_ia3(base, *IA3_TARGETS[arch, on]), IA3Config
    if method == "prompt":
        return rp.PromptTuning(base, 3), PromptTuningConfig
    return rp.PrefixTuning(base, 3), PrefixTuningConfig


def build(arch, on, method):
    """(ours, peft model, family, logits of the plain model): the same base weights on both."""
    hf = make_hf(arch)
    family = None if on == "hf" else arch
    base = copy.deepcopy(hf) if on == "hf" else {"gpt2": gpt_from_hf, "llama": llama_from_hf}[
        arch](hf)
    with torch.no_grad():
        plain = logits(copy.deepcopy(hf)(IDS))
    ours, peft_config = adapt(base, arch, on, method)
    kw = rp.peft_config_kwargs(ours, family)
    if method not in ("lora", "rslora", "dora"):
        kw["task_type"] = "CAUSAL_LM"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft: fan_in_fan_out for Conv1D, and the like
        pm = get_peft_model(hf, peft_config(**kw))
    return ours, pm, family, plain


def jitter(params, seed):
    """Move adapter parameters away from their initial values (B = 0, vectors = 1), so that the
    adapter changes the model and a wrong mapping shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(0.2 * torch.randn(p.shape, generator=g))


def logits(out):
    return out.logits if hasattr(out, "logits") else out


IDS = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(1))


def loss_of(out):
    lg = logits(out)
    target = torch.randint(0, VOCAB, lg.shape[:2], generator=torch.Generator().manual_seed(2))
    return F.cross_entropy(lg.reshape(-1, VOCAB), target.reshape(-1))


def peft_grads(pm):
    """The peft adapter's gradients, named as ``get_peft_model_state_dict`` names the values
    (by swapping the gradients in for a moment)."""
    params = [p for p in pm.parameters() if p.requires_grad]
    saved = [p.data for p in params]
    for p in params:
        p.data = p.grad.clone()
    try:
        return {k: v.clone() for k, v in get_peft_model_state_dict(pm).items()}
    finally:
        for p, d in zip(params, saved):
            p.data = d


def compare(ours, pm, family, plain) -> tuple[float, float]:
    """Max |difference| of the logits and of the adapter gradients (peft's names)."""
    out_ours, out_peft = ours(IDS), pm(input_ids=IDS)
    lo, lp = logits(out_ours), logits(out_peft)
    assert lo.shape == lp.shape
    # the adapter really changes the model (parity is not the trivial B = 0 one)
    assert (lo[:, -IDS.shape[1]:] - plain).abs().max() > 1e-2
    loss_of(out_ours).backward()
    loss_of(out_peft).backward()
    go, gp = rp.to_peft_state_dict(ours, family, grads=True), peft_grads(pm)
    assert set(go) == set(gp)
    dl = (lo - lp).abs().max().item()
    dg = max((go[k] - gp[k]).abs().max().item() for k in gp)
    assert max(v.abs().max().item() for v in gp.values()) > 1e-3  # gradients are not all zero
    return dl, dg


def share_fused_A(ours):
    """Our GPT's q, k, v LoRAs stand for peft's one LoRA on c_attn only with one shared A."""
    layers = rp.lora_layers(ours)
    with torch.no_grad():
        for name, layer in layers.items():
            if name.endswith(("k_proj", "v_proj")):
                layer.lora_A.copy_(layers[name[:-6] + "q_proj"].lora_A)


@pytest.mark.parametrize(("arch", "on", "method"), CASES)
def test_peft_weights_into_ours(arch, on, method):
    ours, pm, family, plain = build(arch, on, method)
    jitter([p for p in pm.parameters() if p.requires_grad], seed=3)
    rp.from_peft_state_dict(ours, get_peft_model_state_dict(pm), family)
    dl, dg = compare(ours, pm, family, plain)
    assert dl < TOL and dg < TOL, (dl, dg)


@pytest.mark.parametrize(("arch", "on", "method"), CASES)
def test_our_weights_into_peft(arch, on, method):
    ours, pm, family, plain = build(arch, on, method)
    jitter([p for p in ours.parameters() if p.requires_grad], seed=4)
    if (arch, on) == ("gpt2", "ours") and method in ("lora", "rslora", "dora"):
        share_fused_A(ours)
    state = rp.to_peft_state_dict(ours, family)
    set_peft_model_state_dict(pm, state)
    loaded = get_peft_model_state_dict(pm)
    assert set(loaded) == set(state)
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k
    dl, dg = compare(ours, pm, family, plain)
    assert dl < TOL and dg < TOL, (dl, dg)
    # and back: peft's state dict loads into a fresh copy of ours unchanged
    again = rp.to_peft_state_dict(ours, family)
    rp.from_peft_state_dict(ours, get_peft_model_state_dict(pm), family)
    for k, v in rp.to_peft_state_dict(ours, family).items():
        assert torch.equal(v, again[k]), k


@pytest.mark.parametrize("on", ["hf", "ours"])
def test_prefix_projection_matches_peft(on):
    """Li & Liang's reparametrisation (peft's prefix_projection): the prefix comes out of an MLP;
    with peft's MLP weights copied in, outputs and the MLP's gradients agree."""
    hf = make_hf("llama")
    base = copy.deepcopy(hf) if on == "hf" else llama_from_hf(hf)
    ours = rp.PrefixTuning(base, 3, projection_dim=20)
    pm = get_peft_model(hf, PrefixTuningConfig(task_type="CAUSAL_LM",
                                               **rp.peft_config_kwargs(ours)))
    enc = pm.prompt_encoder["default"]
    jitter(enc.parameters(), seed=5)
    with torch.no_grad():
        ours.embedding.copy_(enc.embedding.weight)
        for i in (0, 2):
            ours.proj[i].weight.copy_(enc.transform[i].weight)
            ours.proj[i].bias.copy_(enc.transform[i].bias)
    out_ours, out_peft = ours(IDS), pm(input_ids=IDS)
    torch.testing.assert_close(logits(out_ours), logits(out_peft), atol=TOL, rtol=0)
    loss_of(out_ours).backward()
    loss_of(out_peft).backward()
    torch.testing.assert_close(ours.embedding.grad, enc.embedding.weight.grad, atol=TOL, rtol=0)
    for i in (0, 2):
        torch.testing.assert_close(ours.proj[i].weight.grad, enc.transform[i].weight.grad,
                                   atol=TOL, rtol=0)
    # peft saves the computed prefix; so do we
    torch.testing.assert_close(rp.to_peft_state_dict(ours)["prompt_embeddings"],
                               get_peft_model_state_dict(pm)["prompt_embeddings"],
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_attention_mask_and_labels_as_peft(method):
    """peft puts ones in front of an attention mask (and -100 in front of labels for prompt
    tuning); so do we, and the loss transformers computes is the same."""
    ours, pm, _, _ = build("gpt2", "hf", method)
    jitter([p for p in pm.parameters() if p.requires_grad], seed=8)
    rp.from_peft_state_dict(ours, get_peft_model_state_dict(pm))
    mask = torch.ones_like(IDS)
    a = ours(IDS, attention_mask=mask, labels=IDS)
    b = pm(input_ids=IDS, attention_mask=mask, labels=IDS)
    torch.testing.assert_close(a.loss, b.loss, atol=TOL, rtol=0)
    torch.testing.assert_close(a.logits, b.logits, atol=TOL, rtol=0)


def test_our_gpt_with_lora_matches_peft_on_gpt2():
    """The brief's headline: LoRA on our GPT converted from a GPT2LMHeadModel gives peft-LoRA's
    logits on that GPT2LMHeadModel, and the fused A's gradient is the sum of our three."""
    ours, pm, _, _ = build("gpt2", "ours", "lora")
    jitter([p for p in pm.parameters() if p.requires_grad], seed=6)
    rp.from_peft_state_dict(ours, get_peft_model_state_dict(pm), "gpt2")
    layers = rp.lora_layers(ours)
    assert torch.equal(layers["blocks.0.attn.q_proj"].lora_A, layers["blocks.0.attn.v_proj"].lora_A)
    out_ours, out_peft = ours(IDS), pm(input_ids=IDS)
    torch.testing.assert_close(out_ours, out_peft.logits, atol=TOL, rtol=0)
    loss_of(out_ours).backward()
    loss_of(out_peft).backward()
    fused_a = pm.base_model.model.transformer.h[0].attn.c_attn.lora_A["default"].weight.grad
    ours_a = sum(layers[f"blocks.0.attn.{n}_proj"].lora_A.grad for n in "qkv")
    torch.testing.assert_close(ours_a, fused_a, atol=TOL, rtol=0)


def test_conversion_refusals():
    ours, _, _, _ = build("gpt2", "ours", "lora")
    jitter([p for p in ours.parameters() if p.requires_grad], seed=7)
    with pytest.raises(ValueError, match="different A matrices"):
        rp.to_peft_state_dict(ours, "gpt2")
    with pytest.raises(ValueError, match="family: expected one of"):
        rp.to_peft_state_dict(ours, "bert")
    share_fused_A(ours)
    state = rp.to_peft_state_dict(ours, "gpt2")
    broken = {k: v for k, v in state.items() if "h.1." not in k}
    with pytest.raises(ValueError, match=r"missing \['base_model.model.transformer.h.1"):
        rp.from_peft_state_dict(ours, broken, "gpt2")
    with pytest.raises(ValueError, match="unexpected"):
        rp.from_peft_state_dict(ours, {**state, "base_model.model.x.lora_A.weight": state[
            next(iter(state))]}, "gpt2")
    # only q and v adapted: GPT-2's fused c_attn has no place for that
    base = gpt_from_hf(make_hf("gpt2"))
    rp.apply_lora(base, rp.LoRAConfig(["q_proj", "v_proj"], r=2))
    with pytest.raises(ValueError, match="adapts all of them or none"):
        rp.to_peft_state_dict(base, "gpt2")
    # a module the GPT-2 mapping does not know
    other = torch.nn.Module()
    other.head = torch.nn.Linear(4, 4)
    rp.apply_lora(other, rp.LoRAConfig(["head"], r=2))
    with pytest.raises(ValueError, match="no counterpart in transformers' gpt2"):
        rp.to_peft_state_dict(other, "gpt2")
    with pytest.raises(TypeError, match="bottleneck"):
        rp.to_peft_state_dict(rp.apply_adapters(gpt_from_hf(make_hf("gpt2")), ["ffn"], 4))
