"""roadmap_lib.models.seq2seq: what every encoder-decoder shares (config checks, greedy decoding
with an encoded source bound once)."""

import pytest
import torch

from roadmap_lib.models.seq2seq import BoundDecoder, check_config, greedy_seq2seq
from roadmap_lib.models.t5 import T5, T5Config


def _model():
    torch.manual_seed(0)
    return T5(T5Config(vocab_size=20, d_model=16, d_kv=8, d_ff=32, n_layers=1, n_heads=2,
                       dropout=0.0)).eval()


def test_greedy_seq2seq_equals_a_loop_of_full_forwards():
    model = _model()
    src = torch.randint(4, 20, (2, 7))
    start = model.config.decoder_start_token_id
    out = greedy_seq2seq(model, src, 6, use_cache=True)
    assert out.shape == (2, 7) and (out[:, 0] == start).all()
    tgt = torch.full((2, 1), start)
    with torch.no_grad():
        for _ in range(6):
            nxt = model(src, tgt)[:, -1].argmax(-1, keepdim=True)
            tgt = torch.cat([tgt, nxt], 1)
    assert torch.equal(out, tgt)
    assert torch.equal(greedy_seq2seq(model, src, 6, use_cache=False), out)


def test_bound_decoder_is_the_decoder_on_one_memory():
    model = _model()
    src = torch.randint(4, 20, (1, 5))
    memory = model.encode(src, None)
    bound = BoundDecoder(model, memory)
    tgt = torch.tensor([[1, 5, 6]])
    torch.testing.assert_close(bound(tgt), model(src, tgt))
    assert len(bound.new_cache()) == len(model.decoder)


def test_check_config_names_the_bad_field():
    from dataclasses import replace

    good = _model().config
    check_config(good, ("d_model",), ("dropout",))  # a valid config passes
    with pytest.raises(ValueError, match="d_model: expected a positive int"):
        check_config(replace(good, d_model=0), ("d_model",), ())
    with pytest.raises(ValueError, match="pad_token_id: expected a token id in"):
        check_config(replace(good, pad_token_id=99), (), ())
    with pytest.raises(ValueError, match="dropout: expected a probability"):
        check_config(replace(good, dropout=1.5), (), ("dropout",))
