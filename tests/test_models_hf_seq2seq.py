"""roadmap_lib.models.hf_seq2seq: the config checks of the T5 and BART converters.

(Logits, greedy generations and both-way round trips are compared with transformers in
test_models_t5.py and test_models_bart.py.)"""

import pytest
from transformers import BartConfig as HFBartConfig
from transformers import T5Config as HFT5Config

from roadmap_lib.models.hf_seq2seq import bart_config_from_hf, t5_config_from_hf


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
