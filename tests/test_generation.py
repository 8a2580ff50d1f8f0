"""Decoding against transformers' generate and logits warpers with the same random weights."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

from roadmap_lib.generation import (
    beam_search,
    filter_logits,
    greedy,
    next_token_logits,
    sample,
    top_k_filter,
    top_p_filter,
)

VOCAB = 40


def tiny_gpt2():
    """A random GPT-2 with a 40-token vocabulary (also used by tests/test_decoding.py)."""
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                     initializer_range=0.3, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return GPT2LMHeadModel(cfg).eval()


hf = pytest.fixture(scope="module", name="hf")(tiny_gpt2)


def _ours(hf):
    return lambda ids: hf(ids).logits


def _generate(hf, ids, **kw):
    with torch.no_grad():
        return hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, **kw)


def test_greedy_identical_to_transformers(hf):
    ids = torch.randint(2, VOCAB, (3, 5), generator=torch.Generator().manual_seed(1))
    ours = greedy(_ours(hf), ids, 20)
    theirs = _generate(hf, ids, max_new_tokens=20, eos_token_id=None)
    assert torch.equal(ours, theirs)


def test_greedy_with_eos_pads_like_transformers(hf):
    ids = torch.randint(2, VOCAB, (4, 3), generator=torch.Generator().manual_seed(2))
    free = greedy(_ours(hf), ids, 15)
    eos = int(free[0, 6])  # a token the first row emits: that row then stops early
    ours = greedy(_ours(hf), ids, 15, eos_token_id=eos, pad_token_id=0)
    theirs = _generate(hf, ids, max_new_tokens=15, eos_token_id=eos, pad_token_id=0)
    assert torch.equal(ours, theirs[:, : ours.shape[1]])
    assert (ours[0, 7:] == 0).all()


@pytest.mark.parametrize("num_beams,length_penalty,early_stopping", [
    (3, 1.0, False), (4, 0.0, False), (3, 2.0, False), (2, -1.0, False), (3, 1.0, True),
])
def test_beam_search_identical_to_transformers(hf, num_beams, length_penalty, early_stopping):
    g = torch.Generator().manual_seed(3)
    for trial in range(3):
        ids = torch.randint(2, VOCAB, (1, 4), generator=g)
        free = greedy(_ours(hf), ids, 8)
        for eos in (None, int(free[0, -3])):
            ours = beam_search(_ours(hf), ids, 10, num_beams=num_beams, length_penalty=length_penalty,
                               eos_token_id=eos, early_stopping=early_stopping)[0]
            theirs = _generate(hf, ids, max_new_tokens=10, num_beams=num_beams, eos_token_id=eos,
                               pad_token_id=0, length_penalty=length_penalty,
                               early_stopping=early_stopping)[0]
            assert torch.equal(ours, theirs[: len(ours)]), (trial, eos, ours, theirs)
            assert (theirs[len(ours):] == 0).all()


def test_beam_search_one_beam_is_greedy(hf):
    ids = torch.tensor([[5, 6, 7]])
    assert torch.equal(beam_search(_ours(hf), ids, 12, num_beams=1)[0], greedy(_ours(hf), ids, 12)[0])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 60), p=st.floats(0.0, 1.0),
       temperature=st.floats(0.2, 3.0))
def test_filters_equal_transformers_warpers(seed, k, p, temperature):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 50, generator=g) * 3
    logits[0, :5] = logits[0, 5]  # ties
    ids = torch.zeros(3, 1, dtype=torch.long)
    assert torch.equal(top_k_filter(logits, k), TopKLogitsWarper(k)(ids, logits.clone()))
    assert torch.equal(top_p_filter(logits, p), TopPLogitsWarper(p)(ids, logits.clone()))
    ours = filter_logits(logits, temperature=temperature, top_k=k, top_p=p)
    t = logits / temperature
    theirs = TopPLogitsWarper(p)(ids, TopKLogitsWarper(k)(ids, t)) if p < 1.0 else TopKLogitsWarper(k)(ids, t)
    assert torch.equal(ours, theirs)


def test_sampling_is_seeded_and_respects_filters(hf):
    ids = torch.tensor([[3, 4, 5]] * 2)
    a = sample(_ours(hf), ids, 10, temperature=0.8, generator=torch.Generator().manual_seed(0))
    b = sample(_ours(hf), ids, 10, temperature=0.8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    # top_k=1 is greedy
    c = sample(_ours(hf), ids, 10, top_k=1, generator=torch.Generator().manual_seed(5))
    assert torch.equal(c, greedy(_ours(hf), ids, 10))
    # every sampled token lies inside the top-3 of its step
    d = sample(_ours(hf), ids, 10, top_k=3, generator=torch.Generator().manual_seed(7))
    for t in range(3, d.shape[1]):
        top3 = next_token_logits(_ours(hf), d[:, :t]).topk(3).indices
        assert all(d[r, t] in top3[r] for r in range(2))


def test_bad_inputs(hf):
    with pytest.raises(ValueError, match=r"ids: expected a \(batch, seq\) int64 tensor"):
        greedy(_ours(hf), torch.tensor([1, 2, 3]), 3)
    with pytest.raises(ValueError, match="temperature"):
        sample(_ours(hf), torch.tensor([[1]]), 3, temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        top_p_filter(torch.zeros(1, 4), 1.5)
    with pytest.raises(ValueError, match="model: expected logits"):
        greedy(lambda ids: torch.zeros(ids.shape[0], 5), torch.tensor([[1]]), 2)


def test_per_row_temperature_equals_separate_rows():
    logits = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    temps = torch.tensor([0.5, 1.0, 2.0])
    rows = filter_logits(logits, temperature=temps, top_p=0.8)
    for i, t in enumerate(temps.tolist()):
        assert torch.equal(rows[i], filter_logits(logits[i : i + 1], temperature=t, top_p=0.8)[0])
    with pytest.raises(ValueError, match="temperature"):
        filter_logits(logits, temperature=torch.tensor([1.0, 0.0, 1.0]))
