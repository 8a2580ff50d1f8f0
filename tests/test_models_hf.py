"""roadmap_lib.models.hf: the config checks and refusals of the GPT/Llama/BERT converters.

(The logits and both-way weight round trips are compared with transformers in test_models_gpt.py,
test_models_llama.py and test_models_bert.py.)"""

import pytest
import torch
from transformers import BertConfig as HFBertConfig
from transformers import BertModel, GPT2Config

from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.models.hf import (
    bert_config_from_hf,
    bert_from_hf,
    bert_to_hf,
    gpt_config_from_hf,
    gpt_to_hf,
    llama_config_from_hf,
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
