"""roadmap_lib.models.hf: the config checks and refusals of the GPT/Llama/BERT converters.

(The logits and both-way weight round trips are compared with transformers in test_models_gpt.py,
test_models_llama.py and test_models_bert.py.)"""

import pytest
import torch
from transformers import BertConfig as HFBertConfig
from transformers import BertForMaskedLM as HFBertForMaskedLM
from transformers import BertForSequenceClassification as HFBertClassifier
from transformers import BertModel, GPT2Config, GPT2LMHeadModel, LlamaForCausalLM
from transformers import LlamaConfig as HFLlamaConfig

from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.models.hf import (
    bert_config_from_hf,
    bert_from_hf,
    bert_to_hf,
    gpt_config_from_hf,
    gpt_from_hf,
    gpt_to_hf,
    llama_config_from_hf,
    llama_from_hf,
    load_local_pretrained,
)


def test_config_mapping_refuses_other_families_and_activations():
    with pytest.raises(ValueError, match="expected a GPT2Config, got model_type='bert'"):
        gpt_config_from_hf(HFBertConfig())
    with pytest.raises(ValueError, match="activation_function: expected 'gelu_new'"):
        gpt_config_from_hf(GPT2Config(activation_function="relu"))
    with pytest.raises(ValueError, match="expected a BertConfig"):
        bert_config_from_hf(GPT2Config())
    with pytest.raises(ValueError, match="hidden_act: expected 'gelu'"):
        bert_config_from_hf(HFBertConfig(hidden_act="relu"))
    with pytest.raises(ValueError):
        llama_config_from_hf(GPT2Config())


def test_gpt_config_maps_sizes():
    c = gpt_config_from_hf(GPT2Config(n_embd=48, n_layer=3, n_head=4, n_positions=32, vocab_size=77))
    assert (c.d_model, c.n_layers, c.n_heads, c.context_length, c.vocab_size) == (48, 3, 4, 32, 77)
    hf = gpt_to_hf(GPT(c))
    assert hf.config.n_embd == 48 and hf.config.n_layer == 3


def test_bert_converters_refuse_models_without_a_head():
    with pytest.raises(ValueError, match="expected BertForMaskedLM, BertForSequenceClassification"):
        bert_from_hf(BertModel(HFBertConfig(hidden_size=32, num_hidden_layers=1,
                                            num_attention_heads=2, intermediate_size=64)))
    with pytest.raises(TypeError, match="expected one of our BERT models"):
        bert_to_hf(GPT(GPTConfig(vocab_size=10, context_length=8, d_model=16, n_layers=1,
                                 n_heads=2)))


def test_load_local_pretrained_never_downloads(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError):
        load_local_pretrained("gpt2")
    assert not any(tmp_path.rglob("*.safetensors"))
    assert torch.get_num_threads() >= 1


# --- every config flag that changes transformers' computation: supported exactly or refused -----
# (issue 12: GPT-2 variants with scale_attn_weights=False or scale_attn_by_inverse_layer_idx=True
# converted silently and gave logits off by up to 3.6)

def _perturbed(model, names=("ln", "norm", "LayerNorm", "bias")):
    torch.manual_seed(1)
    with torch.no_grad():  # non-trivial norms and biases, so that a mix-up shows
        for name, p in model.named_parameters():
            if any(n in name for n in names):
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _gpt2(**kw):
    torch.manual_seed(0)
    cfg = {"vocab_size": 61, "n_positions": 16, "n_embd": 32, "n_layer": 3, "n_head": 4,
           "initializer_range": 0.2, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
           "bos_token_id": 0, "eos_token_id": 0}
    return _perturbed(GPT2LMHeadModel(GPT2Config(**{**cfg, **kw})))


def _gpt2_logits_match(hf, ours=None):
    ours = gpt_from_hf(hf) if ours is None else ours
    ids = torch.randint(0, 61, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=0)


GPT2_SUPPORTED = [
    {"scale_attn_weights": False},  # no 1/sqrt(head_dim): folded into the query projection
    {"scale_attn_by_inverse_layer_idx": True},  # an extra 1/(layer + 1): folded likewise
    {"scale_attn_weights": False, "scale_attn_by_inverse_layer_idx": True},
    {"reorder_and_upcast_attn": True, "attn_implementation": "eager"},  # fp32: the same numbers
    {"scale_attn_by_inverse_layer_idx": True, "reorder_and_upcast_attn": True,
     "attn_implementation": "eager"},  # Stanford CRFM's GPT-2 checkpoints
    {"n_inner": 40},
    {"layer_norm_epsilon": 0.5},
    {"tie_word_embeddings": False},
    {"activation_function": "gelu_pytorch_tanh"},  # the same tanh GELU, written four more ways
    {"activation_function": "gelu_python_tanh"},
    {"activation_function": "gelu_fast"},
    {"activation_function": "gelu_accurate"},
]


@pytest.mark.parametrize("kw", GPT2_SUPPORTED, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_gpt2_supported_flags_match_transformers(kw):
    _gpt2_logits_match(_gpt2(**kw))


@pytest.mark.parametrize("kw", [{"scale_attn_weights": False},
                                {"scale_attn_by_inverse_layer_idx": True}])
def test_gpt2_attention_scale_variants_round_trip(kw):
    hf = _gpt2(**kw)
    ours = gpt_from_hf(hf)
    back = gpt_to_hf(ours)  # a standard GPT-2 with the scale folded into its weights
    assert back.config.scale_attn_weights and not back.config.scale_attn_by_inverse_layer_idx
    _gpt2_logits_match(hf, ours)
    _gpt2_logits_match(back, ours)


@pytest.mark.parametrize("kw, message", [
    ({"add_cross_attention": True},
     r"config.add_cross_attention: got True; our GPT has no cross-attention \(supported: False\)"),
    ({"activation_function": "gelu"}, r"config.activation_function: expected .*got 'gelu'"),
    ({"activation_function": "relu"}, r"config.activation_function: expected .*got 'relu'"),
])
def test_gpt2_unsupported_flags_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        gpt_config_from_hf(GPT2Config(**kw))
    with pytest.raises(ValueError, match=message):
        gpt_from_hf(_gpt2(**kw))


def _llama(**kw):
    torch.manual_seed(0)
    cfg = {"vocab_size": 67, "hidden_size": 48, "intermediate_size": 80, "num_hidden_layers": 2,
           "num_attention_heads": 6, "num_key_value_heads": 2, "max_position_embeddings": 24,
           "initializer_range": 0.2, "rope_parameters": {"rope_type": "default", "rope_theta": 500.0}}
    return _perturbed(LlamaForCausalLM(HFLlamaConfig(**{**cfg, **kw})), names=("norm",))


@pytest.mark.parametrize("kw", [
    {"pretraining_tp": 2},  # transformers 5 no longer splits the matmuls: nothing changes
    {"hidden_act": "swish"},  # torch's SiLU under another name
    {"rms_norm_eps": 0.5},
    {"head_dim": 16, "tie_word_embeddings": True},
], ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_llama_supported_flags_match_transformers(kw):
    hf = _llama(**kw)
    ids = torch.randint(0, 67, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(llama_from_hf(hf)(ids), hf(ids).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kw, message", [
    ({"attention_bias": True}, r"config.attention_bias: got True; our Llama has no biases"),
    ({"mlp_bias": True}, r"config.mlp_bias: got True; our Llama has no biases"),
    ({"hidden_act": "gelu"}, r"config.hidden_act: expected 'silu' .*got 'gelu'"),
    ({"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}},
     r"config.rope_parameters: .*rope_type 'default'.*got .*'linear'"),
    ({"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 500.0}},
     r"config.rope_parameters: .*got .*'dynamic'"),
])
def test_llama_unsupported_flags_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        llama_config_from_hf(HFLlamaConfig(**kw))


def _bert_config(**kw):
    cfg = {"vocab_size": 71, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 64, "max_position_embeddings": 24, "initializer_range": 0.2,
           "num_labels": 3}
    return HFBertConfig(**{**cfg, **kw})


@pytest.mark.parametrize("kw", [{"layer_norm_eps": 0.5}, {"chunk_size_feed_forward": 4}],
                         ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_bert_supported_flags_match_transformers(kw):
    torch.manual_seed(0)
    hf = _perturbed(HFBertForMaskedLM(_bert_config(**kw)))
    ids = torch.randint(0, 71, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(bert_from_hf(hf)(ids), hf(input_ids=ids).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kw, message", [
    ({"is_decoder": True}, r"config.is_decoder: got True; our BERT is a bidirectional encoder"),
    ({"add_cross_attention": True}, r"config.add_cross_attention: got True; our BERT has no cross"),
    ({"position_embedding_type": "relative_key"},
     r"config.position_embedding_type: got 'relative_key'; .*supported: 'absolute'"),
    ({"hidden_act": "gelu_new"}, r"config.hidden_act: expected 'gelu' .*got 'gelu_new'"),
])
def test_bert_unsupported_flags_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        bert_config_from_hf(_bert_config(**kw))


def test_bert_masked_lm_with_an_untied_decoder_is_refused():
    torch.manual_seed(0)  # transformers unties BertForMaskedLM's decoder; our MLM head is tied
    hf = _perturbed(HFBertForMaskedLM(_bert_config(tie_word_embeddings=False)))
    with pytest.raises(ValueError, match=r"config.tie_word_embeddings: got False; our "
                                         r"BertForMaskedLM ties .*\(supported: True\)"):
        bert_from_hf(hf)
    classifier = _perturbed(HFBertClassifier(_bert_config(tie_word_embeddings=False)))
    ids = torch.randint(0, 71, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # no decoder to tie: converts as before
        torch.testing.assert_close(bert_from_hf(classifier)(ids), classifier(input_ids=ids).logits,
                                   atol=1e-5, rtol=0)
