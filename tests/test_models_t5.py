"""T5 against transformers' T5ForConditionalGeneration with the same random weights."""

import pytest
import torch
from transformers import T5Config as HFT5Config
from transformers import T5ForConditionalGeneration

from roadmap_lib.models.hf_seq2seq import t5_from_hf, t5_to_hf
from roadmap_lib.models.t5 import T5, T5Config

V = 53


def _hf(seed=0, attn="eager", scale=2.0, **kw):
    torch.manual_seed(seed)
    cfg = {
        "vocab_size": V,
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 48,
        "num_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
        "relative_attention_max_distance": 12,
        "dropout_rate": 0.0,
        "attn_implementation": attn,
    }
    model = T5ForConditionalGeneration(HFT5Config(**{**cfg, **kw})).eval()
    with torch.no_grad():  # non-trivial norms and position biases, layers strong enough to matter
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.2 * torch.randn_like(p))
            elif "relative_attention_bias" in name:
                p.normal_(0.0, 1.0)
            elif "shared" not in name and "lm_head" not in name:
                p.mul_(scale)
    return model


def _batch(seed=1, src_len=17, tgt_len=15):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(2, V, (3, src_len), generator=g)
    tgt = torch.randint(2, V, (3, tgt_len), generator=g)
    keep = torch.ones_like(src)
    keep[1, 11:] = 0  # padding in the encoder input
    keep[2, 5:] = 0
    return src, tgt, keep


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"feed_forward_proj": "gated-gelu"},
        {"tie_word_embeddings": False},
        {"num_decoder_layers": 3, "d_kv": 6},
        {
            "attn": "sdpa",
            "scale": 1.5,
        },  # torch's fused kernel sums in another order: smaller logits
    ],
)
def test_logits_match_transformers(kw):
    hf = _hf(**kw)
    ours = t5_from_hf(hf)
    src, tgt, keep = _batch()
    with torch.no_grad():
        theirs = hf(input_ids=src, attention_mask=keep, decoder_input_ids=tgt).logits
        mine = ours(src, tgt, keep == 0)
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


def test_config_mapping():
    c = t5_from_hf(_hf(feed_forward_proj="gated-gelu", tie_word_embeddings=False)).config
    assert (c.feed_forward, c.tie_word_embeddings, c.d_kv, c.num_buckets, c.max_distance) == (
        "gated-gelu",
        False,
        8,
        8,
        12,
    )
    assert c.decoder_start_token_id == c.pad_token_id == 0


def test_padding_is_ignored_and_bias_is_shared():
    ours = t5_from_hf(_hf())
    src, tgt, keep = _batch()
    other = src.masked_fill(keep == 0, 7)
    with torch.no_grad():
        out = ours(src, tgt, keep == 0)
        torch.testing.assert_close(ours(other, tgt, keep == 0), out, atol=1e-6, rtol=0)
        assert not torch.allclose(
            ours(other, tgt)[1], out[1], atol=1e-3
        )  # ... and matters unmasked
    # one position-bias table per stack, in no block
    names = [n for n, _ in ours.named_parameters() if "relative_attention_bias" in n]
    assert names == [
        "encoder_bias.relative_attention_bias.weight",
        "decoder_bias.relative_attention_bias.weight",
    ]
    assert all(
        p.bias is None for m in ours.modules() if isinstance(m, torch.nn.Linear) for p in [m]
    )


@pytest.mark.parametrize("kw", [{}, {"feed_forward_proj": "gated-gelu"}])
def test_greedy_generation_identical(kw):
    hf = _hf(**kw)
    ours = t5_from_hf(hf)
    src, _, keep = _batch(seed=3)
    with torch.no_grad():
        theirs = hf.generate(
            src,
            attention_mask=keep,
            max_new_tokens=24,
            do_sample=False,
            num_beams=1,
            decoder_start_token_id=0,
        )
    mine = ours.generate_greedy(src, 24, keep == 0)
    assert len(set(mine[:, 1:].flatten().tolist())) >= 3  # not one repeated token
    assert torch.equal(mine, theirs)
    assert torch.equal(ours.generate_greedy(src, 24, keep == 0, use_cache=False), mine)


def test_kv_cache_matches_full_forward():
    ours = t5_from_hf(_hf())
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


@pytest.mark.parametrize("tie", [True, False])
def test_roundtrip_both_ways(tie, seq2seq_round_trip):
    torch.manual_seed(0)
    ours = T5(
        T5Config(
            vocab_size=40,
            d_model=24,
            d_kv=8,
            d_ff=40,
            n_layers=2,
            n_heads=3,
            num_buckets=8,
            max_distance=16,
            feed_forward="gated-gelu",
            dropout=0.0,
            tie_word_embeddings=tie,
        )
    ).eval()
    seq2seq_round_trip(ours, t5_to_hf, t5_from_hf)


def test_bad_config_and_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="feed_forward: expected one of"):
        T5Config(feed_forward="swish")
    with pytest.raises(ValueError, match="max_distance"):
        T5Config(num_buckets=32, max_distance=16)
    with pytest.raises(ValueError, match="d_model: expected a positive int"):
        T5Config(d_model=0)
    with pytest.raises(ValueError, match="pad_token_id"):
        T5Config(vocab_size=10, pad_token_id=10)
    with pytest.raises(ValueError, match="model_type"):
        t5_from_hf(type("M", (), {"config": type("C", (), {"model_type": "bart"})()})())
    ours = T5(
        T5Config(
            vocab_size=20,
            d_model=16,
            d_kv=4,
            d_ff=16,
            n_layers=1,
            n_heads=2,
            num_buckets=8,
            max_distance=16,
        )
    )
    with pytest.raises(ValueError, match="ids: expected a"):
        ours.encode(torch.zeros(4, dtype=torch.long))
