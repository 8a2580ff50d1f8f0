"""Rolling KV cache with attention sinks."""

import pytest
import torch

from roadmap_lib.inference.sinks import SinkCache, perplexity, recompute_nll, stream_nll
from roadmap_lib.models import GPT, GPTConfig


def test_sink_cache_keeps_sinks_and_recent_tokens():
    c = SinkCache(window=3, n_sink=2)
    ks = torch.arange(10.0).view(1, 1, 10, 1)
    for t in range(10):
        k, _ = c.update(ks[:, :, t:t + 1], ks[:, :, t:t + 1])
        # the new token sees everything kept so far and itself
        assert k[0, 0, -1, 0] == t
    assert c.k.flatten().tolist() == [0, 1, 7, 8, 9]
    assert len(c) == 5 and c.evicted == 5


def test_rolling_window_without_sinks():
    c = SinkCache(window=4)
    for t in range(7):
        c.update(torch.full((1, 2, 1, 3), float(t)), torch.zeros(1, 2, 1, 3))
    assert c.k[0, 0, :, 0].tolist() == [3, 4, 5, 6]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=20, context_length=16, d_model=32, n_layers=2, n_heads=2)).eval()


def test_inside_the_window_stream_equals_a_full_forward(model):
    ids = torch.randint(0, 20, (12,), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = torch.log_softmax(model(ids[None])[0], -1)
    ref = -full[torch.arange(11), ids[1:]]
    torch.testing.assert_close(stream_nll(model, ids, window=13, n_sink=2), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(recompute_nll(model, ids, window=16), ref, atol=1e-5, rtol=0)


def test_recompute_past_the_window_is_a_fresh_forward(model):
    ids = torch.randint(0, 20, (40,), generator=torch.Generator().manual_seed(1))
    nll = recompute_nll(model, ids, window=8)
    with torch.no_grad():
        last = torch.log_softmax(model(ids[None, 31:39])[0, -1], -1)[ids[39]]
    torch.testing.assert_close(nll[38], -last, atol=1e-5, rtol=0)
    assert perplexity(nll) == pytest.approx(float(nll.mean().exp()), rel=1e-6)


def test_errors(model):
    with pytest.raises(ValueError, match="window"):
        SinkCache(0)
    with pytest.raises(ValueError, match="n_sink"):
        SinkCache(3, -1)
    with pytest.raises(ValueError, match="context_length - 1"):
        stream_nll(model, torch.arange(5), window=14, n_sink=2)
    with pytest.raises(ValueError, match="ids"):
        stream_nll(model, torch.arange(5.0), window=4)
