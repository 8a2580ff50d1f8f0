"""roadmap_lib.models.hf_seq2seq: the config checks of the T5 and BART converters.

(Logits, greedy generations and both-way round trips are compared with transformers in
test_models_t5.py and test_models_bart.py.)"""

import pytest
import torch
from transformers import BartConfig as HFBartConfig
from transformers import BartForConditionalGeneration, T5ForConditionalGeneration
from transformers import T5Config as HFT5Config

from roadmap_lib.models.hf_seq2seq import (
    bart_config_from_hf,
    bart_from_hf,
    t5_config_from_hf,
    t5_from_hf,
)


def test_t5_config_mapping_and_refusals():
    c = t5_config_from_hf(HFT5Config(vocab_size=90, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                     num_decoder_layers=3, num_heads=4))
    assert (c.vocab_size, c.d_model, c.d_kv, c.n_layers, c.n_decoder_layers) == (90, 32, 8, 2, 3)
    assert c.decoder_start_token_id == c.pad_token_id  # T5 starts decoding from <pad>
    with pytest.raises(ValueError, match="expected a T5Config, got model_type='bart'"):
        t5_config_from_hf(HFBartConfig())
    with pytest.raises(ValueError, match="feed_forward_proj"):
        t5_config_from_hf(HFT5Config(feed_forward_proj="gated-swish"))


def test_bart_config_mapping_and_refusals():
    c = bart_config_from_hf(HFBartConfig(vocab_size=70, d_model=32, encoder_layers=1,
                                         decoder_layers=2, encoder_attention_heads=4,
                                         decoder_attention_heads=4, encoder_ffn_dim=64,
                                         decoder_ffn_dim=64, max_position_embeddings=40))
    assert (c.vocab_size, c.encoder_layers, c.decoder_layers, c.context_length) == (70, 1, 2, 40)
    with pytest.raises(ValueError, match="expected a BartConfig"):
        bart_config_from_hf(HFT5Config())
    with pytest.raises(ValueError, match="same attention heads"):
        bart_config_from_hf(HFBartConfig(encoder_attention_heads=4, decoder_attention_heads=2))


# --- every config field that transformers' model reads: supported exactly or refused ----------
# T5's feed-forward is built from config.dense_act_fn and config.is_gated_act (derived from
# feed_forward_proj when the config is made, but a saved or edited config can disagree with it);
# BART's model reads none of mBART's switches (normalize_before, add_final_layer_norm, ...).

V = 53


def _t5(edit=None, **kw):
    torch.manual_seed(0)
    cfg = {"vocab_size": V, "d_model": 32, "d_kv": 8, "d_ff": 48, "num_layers": 2, "num_heads": 4,
           "relative_attention_num_buckets": 8, "relative_attention_max_distance": 12,
           "dropout_rate": 0.0, "attn_implementation": "eager"}
    config = HFT5Config(**{**cfg, **kw})
    for name, value in (edit or {}).items():
        setattr(config, name, value)
    model = T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.2 * torch.randn_like(p))
            elif "shared" not in name and "lm_head" not in name:
                p.mul_(2.0)
    return model


def _bart(**kw):
    torch.manual_seed(0)
    cfg = {"vocab_size": V, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2,
           "encoder_attention_heads": 4, "decoder_attention_heads": 4, "encoder_ffn_dim": 48,
           "decoder_ffn_dim": 48, "max_position_embeddings": 24, "dropout": 0.0,
           "forced_eos_token_id": None, "attn_implementation": "eager"}
    model = BartForConditionalGeneration(HFBartConfig(**{**cfg, **kw})).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.1 * torch.randn_like(p)) if "norm" in name or name.endswith("bias") else p.mul_(4.0)
        model.model.encoder.embed_tokens.weight.copy_(model.model.shared.weight)
        model.model.decoder.embed_tokens.weight.copy_(model.model.shared.weight)
    return model


def _logits_match(ours, hf):
    g = torch.Generator().manual_seed(1)
    src, tgt = torch.randint(3, V, (2, 11), generator=g), torch.randint(3, V, (2, 9), generator=g)
    with torch.no_grad():
        theirs = hf(input_ids=src, decoder_input_ids=tgt).logits
        torch.testing.assert_close(ours(src, tgt), theirs, atol=1e-5, rtol=0)


def _name(kw):
    return ",".join(f"{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("kw", [
    {"feed_forward_proj": "gated-gelu_new"},  # the same FFN as 'gated-gelu'
    {"feed_forward_proj": "gated-gelu_pytorch_tanh"},
    {"edit": {"is_gated_act": True}},  # a relu config edited to gate: transformers builds wi_0/wi_1
    {"edit": {"dense_act_fn": "gelu"}},  # edited to exact GELU: our 'gelu'
    {"layer_norm_epsilon": 0.5},
    {"is_decoder": True},  # T5ForConditionalGeneration sets it per stack itself: no effect
], ids=_name)
def test_t5_supported_fields_match_transformers(kw):
    hf = _t5(**kw)
    _logits_match(t5_from_hf(hf), hf)


@pytest.mark.parametrize("kw, message", [
    ({"edit": {"dense_act_fn": "gelu_new"}},  # relu config whose model runs a tanh GELU
     (r"config.dense_act_fn='gelu_new', is_gated_act=False \(from feed_forward_proj='relu'\): .*"
      r"supported: 'gated-gelu' \(gated gelu_tanh\), .*'gelu' \(gelu\)")),
    ({"feed_forward_proj": "gated-tanh"},
     r"config.dense_act_fn='tanh', is_gated_act=True \(from feed_forward_proj='gated-tanh'\)"),
    ({"feed_forward_proj": "gelu_new"}, r"dense_act_fn='gelu_new', is_gated_act=False"),
], ids=["edited-dense_act_fn", "gated-tanh", "gelu_new"])
def test_t5_unsupported_feed_forwards_are_refused(kw, message):
    config = HFT5Config(**{k: v for k, v in kw.items() if k != "edit"})
    for name, value in kw.get("edit", {}).items():
        setattr(config, name, value)
    with pytest.raises(ValueError, match=message):
        t5_config_from_hf(config)


@pytest.mark.parametrize("kw", [
    # mBART / other families' switches: transformers' BartModel never reads them
    {"normalize_before": True}, {"add_final_layer_norm": True}, {"layernorm_embedding": False},
    {"is_decoder": True},
    {"scale_embedding": True},
    {"activation_function": "gelu_new"},
    {"activation_function": "silu"},
], ids=_name)
def test_bart_fields_match_transformers(kw):
    hf = _bart(**kw)
    _logits_match(bart_from_hf(hf), hf)


@pytest.mark.parametrize("kw, message", [
    ({"activation_function": "tanh"}, r"config.activation_function: expected one of .*got 'tanh'"),
    ({"encoder_ffn_dim": 40}, r"config.encoder_ffn_dim=40, config.decoder_ffn_dim=4096"),
    ({"decoder_attention_heads": 8},
     r"config.encoder_attention_heads=16, config.decoder_attention_heads=8"),
])
def test_bart_unsupported_fields_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        bart_config_from_hf(HFBartConfig(**kw))
