"""Continuous batching: every request's tokens equal greedy decoding of that request alone."""

import pytest
import torch

from roadmap_lib.generation import greedy
from roadmap_lib.inference.batching import Request, decode_step, mixed_workload, prefill, serve
from roadmap_lib.inference.paged import PagedKVCache
from roadmap_lib.models import GPT, GPTConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=30, context_length=64, d_model=32, n_layers=2, n_heads=2)).eval()
    with torch.no_grad():  # sharper distributions, so that greedy outputs vary between requests
        for p in m.parameters():
            p.mul_(5)
    return m


@pytest.mark.parametrize("policy", ["continuous", "static"])
def test_serve_equals_greedy_per_request(model, policy):
    reqs = mixed_workload(9, 30, seed=1)
    out = serve(model, reqs, max_batch=3, policy=policy, num_blocks=64, block_size=4)
    assert [r.rid for r in out["results"]] == list(range(9))
    for req, res in zip(reqs, out["results"]):
        ref = greedy(model, torch.tensor([req.prompt]), req.max_new_tokens)[0, len(req.prompt):]
        assert res.tokens == ref.tolist()
    assert out["tokens"] == sum(r.max_new_tokens for r in reqs)
    assert max(out["batch_sizes"]) <= 3


def test_continuous_needs_fewer_steps_than_static(model):
    reqs = mixed_workload(12, 30, seed=0)
    static = serve(model, reqs, max_batch=4, policy="static")
    cont = serve(model, reqs, max_batch=4, policy="continuous")
    # static decodes each group for its longest request; continuous keeps the slots full
    groups = [reqs[i:i + 4] for i in range(0, 12, 4)]
    assert static["steps"] == sum(max(r.max_new_tokens for r in g) - 1 for g in groups)
    assert cont["steps"] < static["steps"]


def test_ragged_decode_step_matches_single_sequences(model):
    cache = PagedKVCache.for_model(model, num_blocks=32, block_size=4)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11]]
    first = [prefill(model, cache, i, p) for i, p in enumerate(prompts)]
    tokens = torch.tensor([int(f.argmax()) for f in first])
    logits = decode_step(model, cache, [0, 1, 2], tokens)
    for i, p in enumerate(prompts):
        with torch.no_grad():
            ref = model(torch.tensor([p + [int(tokens[i])]]))[0, -1]
        torch.testing.assert_close(logits[i], ref, atol=1e-5, rtol=0)


def test_errors(model):
    with pytest.raises(ValueError, match="policy"):
        serve(model, [Request(0, [1], 2)], max_batch=2, policy="fifo")
    with pytest.raises(ValueError, match="context length"):
        serve(model, [Request(0, [1] * 60, 10)], max_batch=2)
    with pytest.raises(ValueError, match="prompt"):
        Request(0, [], 3)
    with pytest.raises(TypeError, match="model"):
        serve(torch.nn.Linear(2, 2), [Request(0, [1], 2)], max_batch=1)
