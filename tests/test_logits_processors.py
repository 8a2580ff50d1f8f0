"""Every logits processor against its transformers counterpart on the same scores (within 1e-6),
frequency/presence penalties against OpenAI's written definition, and bad parameters."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.generation.logits_process import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    MinNewTokensLengthLogitsProcessor,
    MinPLogitsWarper,
    NoBadWordsLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from roadmap_lib.logits_processors import (
    BadWords,
    Epsilon,
    Eta,
    FrequencyPresencePenalty,
    LogitsPipeline,
    MinNewTokens,
    MinP,
    NoRepeatNGram,
    RepetitionPenalty,
    RowGroups,
    Temperature,
    TopK,
    TopP,
    Typical,
    make_pipeline,
)


def _inputs(seed, vocab=50, batch=3, seq=12, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(batch, vocab, generator=g) * scale
    scores[0, :4] = scores[0, 4]  # ties
    ids = torch.randint(0, vocab, (batch, seq), generator=g)
    if seq >= 10:
        ids[1, -4:] = ids[1, 2:6]  # a repeated n-gram
    return ids, scores


def _same(ours, theirs):
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    finite = torch.isfinite(theirs)
    torch.testing.assert_close(ours[finite], theirs[finite], atol=1e-6, rtol=0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 8.0), keep=st.integers(1, 5),
       min_p=st.floats(0.0, 1.0), mass=st.floats(0.01, 0.99), eps=st.floats(1e-4, 0.5))
def test_warpers_equal_transformers(seed, scale, keep, min_p, mass, eps):
    ids, scores = _inputs(seed, scale=scale)
    pairs = [
        (MinP(min_p, keep), MinPLogitsWarper(min_p, min_tokens_to_keep=keep)),
        (Typical(mass, keep), TypicalLogitsWarper(mass, min_tokens_to_keep=keep)),
        (Epsilon(eps, keep), EpsilonLogitsWarper(eps, min_tokens_to_keep=keep)),
        (Eta(eps, keep), EtaLogitsWarper(eps, min_tokens_to_keep=keep)),
        (TopP(mass, keep), TopPLogitsWarper(mass, min_tokens_to_keep=keep)),
        (TopK(keep), TopKLogitsWarper(keep)),
        (Temperature(scale), TemperatureLogitsWarper(scale)),
    ]
    for ours, theirs in pairs:
        _same(ours(ids, scores.clone()), theirs(ids, scores.clone()))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), penalty=st.floats(0.3, 3.0), n=st.integers(1, 5),
       seq=st.integers(1, 20))
def test_penalties_equal_transformers(seed, penalty, n, seq):
    ids, scores = _inputs(seed, vocab=12, seq=seq)  # small vocab: many repeats
    _same(RepetitionPenalty(penalty)(ids, scores.clone()),
          RepetitionPenaltyLogitsProcessor(penalty)(ids, scores.clone()))
    _same(NoRepeatNGram(n)(ids, scores.clone()), NoRepeatNGramLogitsProcessor(n)(ids, scores.clone()))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), seq=st.integers(1, 12), min_new=st.integers(0, 12),
       prompt=st.integers(0, 12), eos=st.integers(0, 11))
def test_constraints_equal_transformers(seed, seq, min_new, prompt, eos):
    ids, scores = _inputs(seed, vocab=12, seq=seq)
    prompt = min(prompt, seq)
    _same(MinNewTokens(min_new, eos, prompt)(ids, scores.clone()),
          MinNewTokensLengthLogitsProcessor(prompt, min_new, eos)(ids, scores.clone()))
    # bad words built from the ids themselves, so that some multi-token ones match the history
    g = torch.Generator().manual_seed(seed)
    bad = [[eos], [int(torch.randint(0, 12, (1,), generator=g))], ids[1, -2:].tolist(), ids[0, -3:].tolist(),
           torch.randint(0, 12, (4,), generator=g).tolist()]
    _same(BadWords(bad, eos)(ids, scores.clone()), NoBadWordsLogitsProcessor(bad, eos)(ids, scores.clone()))


def test_constraints_ban_what_they_say():
    ids = torch.tensor([[5, 1, 2], [5, 2, 1]])
    out = BadWords([[3], [1, 2, 4], [2, 0]])(ids, torch.zeros(2, 6))
    assert torch.isinf(out[0]).nonzero().flatten().tolist() == [0, 3, 4]  # "2 -> 0", "3", "1 2 -> 4"
    assert torch.isinf(out[1]).nonzero().flatten().tolist() == [3]
    eos_banned = MinNewTokens(2, eos_token_id=4, prompt_length=2)(ids, torch.zeros(2, 6))
    assert torch.isinf(eos_banned).nonzero().tolist() == [[0, 4], [1, 4]]  # 1 new token < 2
    assert torch.isfinite(MinNewTokens(1, 4, prompt_length=2)(ids, torch.zeros(2, 6))).all()
    with pytest.raises(ValueError, match="eos_token_id: min_new_tokens needs"):
        make_pipeline(min_new_tokens=3)


def test_no_repeat_ngram_bans_exactly_the_completions():
    ids = torch.tensor([[1, 2, 3, 1, 2, 4, 1, 2]])
    out = NoRepeatNGram(3)(ids, torch.zeros(1, 6))
    assert torch.isinf(out[0]).nonzero().flatten().tolist() == [3, 4]  # 1 2 -> 3 and 1 2 -> 4 seen


def test_frequency_presence_follow_openai_definition():
    # mu[j] -> mu[j] - c[j] * alpha_frequency - float(c[j] > 0) * alpha_presence, c counted by hand
    ids = torch.tensor([[9, 9, 0, 0, 0, 1, 2], [9, 9, 3, 3, 3, 3, 3]])
    scores = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))
    out = FrequencyPresencePenalty(frequency=0.5, presence=0.25, prompt_length=2)(ids, scores)
    want = scores.clone()
    counts = {0: {0: 3, 1: 1, 2: 1}, 1: {3: 5}}  # tokens after the 2 prompt tokens
    for row, cs in counts.items():
        for tok, c in cs.items():
            want[row, tok] -= c * 0.5 + 0.25
    torch.testing.assert_close(out, want, atol=0, rtol=0)


def test_repetition_penalty_makes_seen_tokens_less_likely():
    ids = torch.tensor([[0, 1]])
    scores = torch.tensor([[2.0, -2.0, 0.5]])
    out = RepetitionPenalty(2.0)(ids, scores)
    torch.testing.assert_close(out, torch.tensor([[1.0, -4.0, 0.5]]))
    assert RepetitionPenalty(2.0, prompt_length=2)(ids, scores).equal(scores)


def test_pipeline_order_equals_transformers_order():
    ids, scores = _inputs(3)
    ours = make_pipeline(repetition_penalty=1.3, no_repeat_ngram_size=2, temperature=0.7, top_k=20,
                         top_p=0.9, min_p=0.05, typical_p=0.95, epsilon=1e-3, eta=1e-3)
    theirs = [RepetitionPenaltyLogitsProcessor(1.3), NoRepeatNGramLogitsProcessor(2),
              TemperatureLogitsWarper(0.7), TopKLogitsWarper(20), TopPLogitsWarper(0.9),
              MinPLogitsWarper(0.05), TypicalLogitsWarper(0.95), EpsilonLogitsWarper(1e-3),
              EtaLogitsWarper(1e-3)]
    want = scores.clone()
    for p in theirs:
        want = p(ids, want)
    _same(ours(ids, scores.clone()), want)
    assert [type(p).__name__ for p in make_pipeline(top_p=1.0, temperature=1.0)] == []
    assert isinstance(ours, LogitsPipeline) and len(ours) == 9


@pytest.mark.parametrize("make,match", [
    (lambda: MinP(1.5), "min_p"), (lambda: Typical(1.0), "typical_p"), (lambda: Epsilon(0.0), "epsilon"),
    (lambda: Eta(1.0), "eta"), (lambda: RepetitionPenalty(0.0), "repetition_penalty"),
    (lambda: FrequencyPresencePenalty(float("nan")), "frequency_penalty"),
    (lambda: FrequencyPresencePenalty(0.0, float("inf")), "presence_penalty"),
    (lambda: NoRepeatNGram(0), "no_repeat_ngram_size"), (lambda: MinP(0.1, 0), "min_tokens_to_keep"),
    (lambda: Temperature(0.0), "temperature"), (lambda: TopK(0), "top_k"), (lambda: TopP(2.0), "top_p"),
    (lambda: RepetitionPenalty(1.2, prompt_length=-1), "prompt_length"),
    (lambda: BadWords([]), "bad_words_ids"), (lambda: BadWords([[1, -2]]), "bad_words_ids"),
    (lambda: MinNewTokens(-1, 0, 0), "min_new_tokens"), (lambda: MinNewTokens(2, None, 0), "eos_token_id"),
])
def test_bad_parameters_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"scores: expected \(batch, vocab\)"):
        RepetitionPenalty(1.2)(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 5))


def test_row_groups_equal_separate_pipelines():
    ids, scores = _inputs(4, batch=5)
    a, b = make_pipeline(min_p=0.2, repetition_penalty=1.4), make_pipeline(temperature=0.5, top_k=3)
    out = RowGroups([a, b], [2, 3])(ids, scores.clone())
    _same(out[:2], a(ids[:2], scores[:2].clone()))
    _same(out[2:], b(ids[2:], scores[2:].clone()))
    with pytest.raises(ValueError, match="sizes"):
        RowGroups([a, b], [2])
    with pytest.raises(ValueError, match="rows"):
        RowGroups([a, b], [2, 2])(ids, scores)
