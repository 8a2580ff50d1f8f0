"""The original encoder-decoder Transformer: causality, padding, incremental decoding, errors."""

import pytest
import torch

from roadmap_lib.generation import greedy
from roadmap_lib.models.encoder_decoder import Transformer, TransformerConfig


def _model():
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=37, context_length=24, d_model=32, n_layers=2, n_heads=4, dropout=0.0)
    return Transformer(cfg).eval()


def test_shapes_causality_and_padding():
    m = _model()
    g = torch.Generator().manual_seed(1)
    src, tgt = torch.randint(0, 37, (2, 10), generator=g), torch.randint(0, 37, (2, 7), generator=g)
    pad = torch.zeros(2, 10, dtype=torch.bool)
    pad[1, 6:] = True
    with torch.no_grad():
        out = m(src, tgt, pad)
        assert out.shape == (2, 7, 37)
        later = tgt.clone()
        later[:, -1] = (later[:, -1] + 1) % 37
        assert torch.allclose(m(src, later, pad)[:, :-1], out[:, :-1], atol=1e-6)  # causal decoder
        other = src.clone()
        other[1, 6:] = 0
        torch.testing.assert_close(m(other, tgt, pad)[1], out[1], atol=1e-6, rtol=0)  # padding ignored
        assert not torch.allclose(m(other, tgt)[1], out[1], atol=1e-4)  # ... and matters unmasked


def test_incremental_decoding_matches_teacher_forcing():
    m = _model()
    g = torch.Generator().manual_seed(2)
    src, tgt = torch.randint(0, 37, (2, 9), generator=g), torch.randint(0, 37, (2, 8), generator=g)
    with torch.no_grad():
        memory = m.encode(src)
        full = m.decode(tgt, memory)
        cache = m.new_cache()
        steps = [m.decode(tgt[:, :3], memory, cache=cache)]
        steps += [m.decode(tgt[:, t : t + 1], memory, cache=cache) for t in range(3, 8)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)
    out = greedy(lambda ids: m.decode(ids, memory), tgt[:, :1], 10)
    assert out.shape == (2, 11)


def test_too_long_is_a_clear_error():
    m = _model()
    with pytest.raises(ValueError, match="exceeds the model's context length 24"):
        m.encode(torch.zeros(1, 25, dtype=torch.long))
