"""Beam search with logits processors and several returned sequences, against transformers'
``generate(num_beams=..., repetition_penalty=..., no_repeat_ngram_size=..., min_new_tokens=...,
bad_words_ids=..., num_return_sequences=...)`` with the same random weights."""

import pytest
import torch
from test_generation import VOCAB, tiny_gpt2

from roadmap_lib.generation import beam_search, greedy
from roadmap_lib.logits_processors import (
    MinNewTokens,
    NoRepeatNGram,
    RepetitionPenalty,
    make_pipeline,
)
from roadmap_lib.models.gpt import GPT, GPTConfig
from roadmap_lib.models.hf import gpt_to_hf

hf = pytest.fixture(scope="module", name="hf")(tiny_gpt2)
EOS = 1


def _ours(hf):
    return lambda ids: hf(ids).logits


def _theirs(hf, ids, **kw):
    with torch.no_grad():
        return hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, pad_token_id=0, **kw)


def _same(ours: list[torch.Tensor], theirs: torch.Tensor) -> None:
    """Our unpadded sequences equal transformers' rows, which are padded with 0 after the end."""
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        assert torch.equal(o, t[: len(o)]), (o, t)
        assert (t[len(o):] == 0).all(), (o, t)


CASES = [  # (processor arguments, num_beams, length_penalty, early_stopping)
    ({"repetition_penalty": 1.5}, 3, 1.0, False),
    ({"repetition_penalty": 0.7}, 4, 0.5, True),
    ({"no_repeat_ngram_size": 2}, 4, 1.0, False),
    ({"no_repeat_ngram_size": 3, "repetition_penalty": 1.3}, 3, 2.0, True),
    ({"min_new_tokens": 6}, 3, 1.0, False),
    ({"bad_words_ids": "from the free search"}, 4, 1.0, False),
]


@pytest.mark.parametrize("kw,num_beams,length_penalty,early_stopping", CASES)
def test_beam_search_with_processors_identical_to_transformers(hf, kw, num_beams, length_penalty, early_stopping):
    g = torch.Generator().manual_seed(7)
    changed = 0
    for trial in range(2):
        ids = torch.randint(2, VOCAB, (1, 4), generator=g)
        free = greedy(_ours(hf), ids, 8)
        eos = int(free[0, -4]) if "min_new_tokens" in kw else EOS  # an eos the beams meet early
        common = {"num_beams": num_beams, "length_penalty": length_penalty, "eos_token_id": eos,
                      "early_stopping": early_stopping}
        plain = beam_search(_ours(hf), ids, 10, **common)[0]
        if "bad_words_ids" in kw:  # ban the free search's first token (when not eos) and its 5th-6th tokens
            kw = {"bad_words_ids": [[int(plain[4])], [int(plain[8]), int(plain[9])], [int(plain[5]), 3, 9]]}
        procs = make_pipeline(**kw, eos_token_id=eos, prompt_length=ids.shape[1])
        ours = beam_search(_ours(hf), ids, 10, processors=procs, **common)
        theirs = _theirs(hf, ids, max_new_tokens=10, **common, **kw)
        _same(ours, theirs)
        changed += not torch.equal(ours[0], plain)
    assert changed >= 1  # the processors changed at least one of the searches


@pytest.mark.parametrize("n", [1, 2, 3])
def test_num_return_sequences_identical_to_transformers(hf, n):
    ids = torch.randint(2, VOCAB, (2, 4), generator=torch.Generator().manual_seed(4))
    for eos in (None, EOS):
        ours = beam_search(_ours(hf), ids, 10, num_beams=3, eos_token_id=eos, num_return_sequences=n,
                           processors=make_pipeline(no_repeat_ngram_size=2))
        theirs = _theirs(hf, ids, max_new_tokens=10, num_beams=3, eos_token_id=eos, num_return_sequences=n,
                         no_repeat_ngram_size=2)
        _same(ours, theirs)
        assert len({tuple(s.tolist()) for s in ours[:n]}) == n  # distinct hypotheses


def test_our_gpt_and_its_transformers_copy_beam_alike():
    """The chapter's path: our GPT decodes with our beam search; its transformers copy with generate."""
    torch.manual_seed(2)
    model = GPT(GPTConfig(vocab_size=30, context_length=32, d_model=32, n_layers=2, n_heads=2)).eval()
    copy = gpt_to_hf(model).eval()
    ids = torch.randint(2, 30, (2, 5), generator=torch.Generator().manual_seed(3))
    theirs = _theirs(copy, ids, max_new_tokens=16, num_beams=4, no_repeat_ngram_size=3, num_return_sequences=2)
    for use_cache in (False, True):
        ours = beam_search(model, ids, 16, num_beams=4, processors=[NoRepeatNGram(3)], num_return_sequences=2,
                           use_cache=use_cache)
        _same(ours, theirs)


def test_cached_beam_search_equals_uncached():
    """The cache follows the surviving beams: reordering it wrongly would change the hypotheses."""
    torch.manual_seed(5)
    model = GPT(GPTConfig(vocab_size=30, context_length=40, d_model=32, n_layers=2, n_heads=2)).eval()
    ids = torch.randint(2, 30, (3, 4), generator=torch.Generator().manual_seed(6))
    for kw in ({}, {"eos_token_id": 3, "num_return_sequences": 3}, {"processors": [RepetitionPenalty(1.5)]}):
        a = beam_search(model, ids, 30, num_beams=4, **kw)
        b = beam_search(model, ids, 30, num_beams=4, use_cache=True, **kw)
        assert all(torch.equal(x, y) for x, y in zip(a, b)) and len(a) == len(b)
    with pytest.raises(TypeError, match="use_cache=True needs a model with new_cache"):
        beam_search(lambda i: model(i), ids, 3, use_cache=True)


def test_processors_as_a_list_and_as_a_pipeline_agree(hf):
    ids = torch.tensor([[4, 5, 6]])
    procs = [RepetitionPenalty(1.4), NoRepeatNGram(2)]
    a = beam_search(_ours(hf), ids, 10, num_beams=3, processors=procs)
    b = beam_search(_ours(hf), ids, 10, num_beams=3, processors=make_pipeline(repetition_penalty=1.4,
                                                                               no_repeat_ngram_size=2))
    assert torch.equal(a[0], b[0])


def test_min_new_tokens_keeps_beams_going(hf):
    ids = torch.tensor([[4, 5, 6]])
    # the first eos id (in id order) with which the plain search ends before 5 new tokens
    eos, short = next((e, s) for e in range(2, VOCAB)
                      for s in [beam_search(_ours(hf), ids, 10, num_beams=3, eos_token_id=e)[0]] if len(s) < 3 + 5)
    long = beam_search(_ours(hf), ids, 10, num_beams=3, eos_token_id=eos,
                       processors=[MinNewTokens(5, eos, prompt_length=3)])[0]
    assert short[-1] == eos
    assert len(long) >= 3 + 5 and eos not in long[3:8].tolist()


def test_bad_beam_arguments(hf):
    ids = torch.tensor([[4, 5]])
    with pytest.raises(ValueError, match=r"num_return_sequences: expected an int in \[1, num_beams = 2\], got 3"):
        beam_search(_ours(hf), ids, 4, num_beams=2, num_return_sequences=3)
    with pytest.raises(TypeError, match="processors: expected a callable"):
        beam_search(_ours(hf), ids, 4, num_beams=2, processors=[1.3])
    with pytest.raises(ValueError, match="num_beams"):
        beam_search(_ours(hf), ids, 4, num_beams=0)
