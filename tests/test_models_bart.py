"""BART against transformers' BartForConditionalGeneration with the same random weights."""

import pytest
import torch
from transformers import BartConfig as HFBartConfig
from transformers import BartForConditionalGeneration

from roadmap_lib.models.bart import Bart, BartConfig
from roadmap_lib.models.hf_seq2seq import bart_from_hf, bart_to_hf

V, CTX = 53, 40
_SCALE = {"shared": 2.0, "embed_tokens": 2.0, "embed_positions": 10.0}


def _hf(seed=0, attn="eager", eos_bias=-3.0, **kw):
    torch.manual_seed(seed)
    cfg = {
        "vocab_size": V,
        "d_model": 32,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 48,
        "decoder_ffn_dim": 48,
        "max_position_embeddings": CTX,
        "dropout": 0.0,
        "forced_eos_token_id": None,
        "attn_implementation": attn,
    }
    model = BartForConditionalGeneration(HFBartConfig(**{**cfg, **kw})).eval()
    with (
        torch.no_grad()
    ):  # non-trivial norms, biases and logit bias; weights strong enough to matter
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
            else:  # embeddings weaker than the layers, so that greedy decoding does not get stuck
                p.mul_(next((s for k, s in _SCALE.items() if k in name), 8.0))
        model.final_logits_bias.normal_(0.0, 0.5)
        model.final_logits_bias[0, model.config.eos_token_id] += eos_bias  # < 0: not at once
        # untied, transformers 5 keeps three embedding matrices: a real checkpoint has one
        model.model.encoder.embed_tokens.weight.copy_(model.model.shared.weight)
        model.model.decoder.embed_tokens.weight.copy_(model.model.shared.weight)
    return model


def _batch(seed=1, src_len=17, tgt_len=15):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, V, (3, src_len), generator=g)
    tgt = torch.randint(3, V, (3, tgt_len), generator=g)
    keep = torch.ones_like(src)
    keep[1, 11:] = 0  # padding in the encoder input
    keep[2, 5:] = 0
    return src, tgt, keep


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"scale_embedding": True},
        {"tie_word_embeddings": False},
        {"decoder_layers": 3},
        {"activation_function": "relu"},
        {"attn": "sdpa"},
    ],
)
def test_logits_match_transformers(kw):
    hf = _hf(**kw)
    ours = bart_from_hf(hf)
    src, tgt, keep = _batch()
    with torch.no_grad():
        theirs = hf(input_ids=src, attention_mask=keep, decoder_input_ids=tgt).logits
        mine = ours(src, tgt, keep == 0)
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


def test_full_context_matches_transformers():
    hf = _hf()
    ours = bart_from_hf(hf)
    src, tgt, keep = _batch(
        seed=2, src_len=CTX, tgt_len=CTX
    )  # the last rows of the position tables
    with torch.no_grad():
        theirs = hf(input_ids=src, attention_mask=keep, decoder_input_ids=tgt).logits
        torch.testing.assert_close(ours(src, tgt, keep == 0), theirs, atol=1e-5, rtol=0)


def test_padding_is_ignored():
    ours = bart_from_hf(_hf())
    src, tgt, keep = _batch()
    other = src.masked_fill(keep == 0, 7)
    with torch.no_grad():
        out = ours(src, tgt, keep == 0)
        torch.testing.assert_close(ours(other, tgt, keep == 0), out, atol=1e-6, rtol=0)
        assert not torch.allclose(
            ours(other, tgt)[1], out[1], atol=1e-3
        )  # ... and matters unmasked


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"tie_word_embeddings": False, "seed": 1},
        {"eos_token_id": 34, "eos_bias": 0.0},  # rows stop at different steps, then all of them
    ],
)
def test_greedy_generation_identical(kw):
    hf = _hf(**kw)
    ours = bart_from_hf(hf)
    src, _, keep = _batch(seed=3)
    with torch.no_grad():
        theirs = hf.generate(
            src, attention_mask=keep, max_new_tokens=24, do_sample=False, num_beams=1
        )
    mine = ours.generate_greedy(src, 24, keep == 0)
    assert (
        mine[0, 0] == 2 and len(set(mine[:, 1:].flatten().tolist())) >= 3
    )  # starts at </s>, not stuck
    assert torch.equal(mine, theirs)
    assert torch.equal(ours.generate_greedy(src, 24, keep == 0, use_cache=False), mine)
    if "eos_token_id" in kw:
        assert mine.shape[1] < 25 and (mine == ours.config.pad_token_id).any()


def test_kv_cache_matches_full_forward():
    ours = bart_from_hf(_hf())
    src, tgt, keep = _batch(seed=4)
    with torch.no_grad():
        memory = ours.encode(src, keep == 0)
        full = ours.decode(tgt, memory, keep == 0)
        cache = ours.new_cache()
        parts = [ours.decode(tgt[:, :4], memory, keep == 0, cache=cache)]
        parts += [
            ours.decode(tgt[:, t : t + 1], memory, keep == 0, cache=cache)
            for t in range(4, tgt.shape[1])
        ]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kw", [{}, {"tie_word_embeddings": False, "scale_embedding": True, "activation": "relu"}]
)
def test_roundtrip_both_ways(kw, seq2seq_round_trip):
    torch.manual_seed(0)
    ours = Bart(
        BartConfig(
            vocab_size=40,
            context_length=16,
            d_model=24,
            encoder_layers=2,
            decoder_layers=1,
            n_heads=3,
            d_ff=40,
            dropout=0.0,
            **kw,
        )
    ).eval()
    with torch.no_grad():
        ours.final_logits_bias.normal_()
    seq2seq_round_trip(ours, bart_to_hf, bart_from_hf)


def test_too_long_is_a_clear_error():
    ours = bart_from_hf(_hf())
    with pytest.raises(ValueError, match=f"exceeds the model's context length {CTX}"):
        ours.encode(torch.full((1, CTX + 1), 5))
    memory = ours.encode(torch.full((1, 4), 5))
    cache = ours.new_cache()
    ours.decode(torch.full((1, CTX), 5), memory, cache=cache)
    with pytest.raises(ValueError, match=rf"\({CTX} cached \+ 1 new\) exceeds"):
        ours.decode(torch.full((1, 1), 5), memory, cache=cache)
    with pytest.raises(ValueError, match="exceeds the model's context length"):
        ours.decode(torch.full((1, CTX + 1), 5), memory)


def test_bad_config_and_checkpoint_are_clear_errors():
    with pytest.raises(ValueError, match="n_heads: expected a divisor of d_model=30"):
        BartConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="activation: expected one of"):
        BartConfig(activation="swish")
    with pytest.raises(ValueError, match="context_length: expected a positive int"):
        BartConfig(context_length=0)
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        BartConfig(vocab_size=10, decoder_start_token_id=12)
    hf = _hf(tie_word_embeddings=False)
    with torch.no_grad():
        hf.model.decoder.embed_tokens.weight.add_(1.0)
    with pytest.raises(ValueError, match="decoder.embed_tokens.weight differs"):
        bart_from_hf(hf)
    with pytest.raises(ValueError, match="same attention heads"):
        bart_from_hf(_hf(decoder_attention_heads=2))
