"""roadmap_lib.alignment.logprobs: log π(completion | prompt) under our models and transformers'."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.alignment import (
    collate_completions,
    completion_token_logprobs,
    logprobs_from_logits,
    sequence_logprobs,
    token_logprobs,
)
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.models.hf import gpt_to_hf

VOCAB = 30


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, context_length=24, d_model=16, n_layers=2, n_heads=2)).eval()


def test_token_logprobs_is_the_next_token_log_softmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 7, (2, 5), generator=g)
    got = token_logprobs(logits, ids)
    assert got.shape == (2, 4)
    for b in range(2):
        for t in range(1, 5):
            want = logits[b, t - 1, ids[b, t]] - torch.logsumexp(logits[b, t - 1], -1)
            assert got[b, t - 1].item() == pytest.approx(want.item(), abs=1e-12)


def test_sums_and_means_count_only_completion_tokens():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 6, 5, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 5, (3, 6), generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 0]])
    per_token = token_logprobs(logits, ids)
    want = torch.stack([per_token[0, 1:4].sum(), per_token[1, 0:5].sum(), per_token[2, 3]])
    torch.testing.assert_close(logprobs_from_logits(logits, ids, mask), want)
    torch.testing.assert_close(logprobs_from_logits(logits, ids, mask.bool(), average=True),
                               want / torch.tensor([3.0, 5.0, 1.0], dtype=torch.float64))
    masked = completion_token_logprobs(logits, ids, mask)
    assert (masked[mask[:, 1:] == 0] == 0).all() and torch.equal(masked.sum(-1), want)


def test_our_gpt_and_its_transformers_twin_give_the_same_sequence_logprobs():
    ours = tiny_gpt()
    hf = gpt_to_hf(ours)
    ids, completion_mask, attention_mask = collate_completions(
        [[1, 2, 3], [4, 5], [6, 7, 8, 9]], [[10, 11], [12, 13, 14, 15, 16], [17]], pad_id=0)
    with torch.no_grad():
        a = sequence_logprobs(ours, ids, completion_mask)
        b = sequence_logprobs(hf, ids, completion_mask, attention_mask=attention_mask)
        c = sequence_logprobs(hf, ids, completion_mask)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(a, c, atol=1e-5, rtol=0)  # right padding: the mask changes nothing
    assert a.shape == (3,) and (a < 0).all()
    # left padding (as for generation): the same rows shifted right; the mask sets the positions
    shift = attention_mask.shape[1] - attention_mask.sum(1)
    left = [torch.roll(x, int(k)) for x, k in zip(ids, shift)]
    left_cm = [torch.roll(x, int(k)) for x, k in zip(completion_mask, shift)]
    left_am = [torch.roll(x, int(k)) for x, k in zip(attention_mask, shift)]
    assert left_am[0].tolist() == [0, 0, 1, 1, 1, 1, 1]
    with torch.no_grad():
        d = sequence_logprobs(hf, torch.stack(left), torch.stack(left_cm), attention_mask=torch.stack(left_am))
    torch.testing.assert_close(a, d, atol=1e-5, rtol=0)


def test_sequence_logprobs_are_differentiable():
    model = tiny_gpt()
    ids, mask, _ = collate_completions([[1, 2]], [[3, 4, 5]], pad_id=0)
    sequence_logprobs(model, ids, mask).sum().backward()
    assert model.wte.weight.grad is not None and model.wte.weight.grad.abs().sum() > 0


@settings(max_examples=15, deadline=None)
@given(prompt=st.lists(st.integers(1, VOCAB - 1), min_size=1, max_size=5),
       completion=st.lists(st.integers(1, VOCAB - 1), min_size=1, max_size=5), extra=st.integers(0, 6))
def test_right_padding_does_not_change_a_causal_models_logprobs(prompt, completion, extra):
    model = tiny_gpt()
    ids, mask, _ = collate_completions([prompt], [completion], pad_id=0)
    padded = torch.cat([ids, torch.zeros(1, extra, dtype=torch.long)], 1)
    padded_mask = torch.cat([mask, torch.zeros(1, extra, dtype=torch.long)], 1)
    with torch.no_grad():
        torch.testing.assert_close(sequence_logprobs(model, ids, mask), sequence_logprobs(model, padded, padded_mask),
                                   atol=1e-5, rtol=0)


def test_collate_completions():
    ids, cm, am = collate_completions([[5, 6], [1]], [[7], [2, 3, 4]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 0], [1, 2, 3, 4]]
    assert cm.tolist() == [[0, 0, 1, 0], [0, 1, 1, 1]]
    assert am.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    with pytest.raises(ValueError, match="prompts: row 0 is empty"):
        collate_completions([[]], [[1]], pad_id=0)
    with pytest.raises(ValueError, match="completions: expected 2 rows"):
        collate_completions([[1], [2]], [[3]], pad_id=0)


def test_clear_errors():
    model = tiny_gpt()
    ids, mask, _ = collate_completions([[1, 2]], [[3, 4]], pad_id=0)
    with pytest.raises(TypeError, match=r"completion_mask: expected a bool or integer 0/1 tensor, got torch.float32"):
        sequence_logprobs(model, ids, mask.float())
    with pytest.raises(ValueError, match=r"completion_mask: expected shape \(1, 4\), got \(1, 3\)"):
        sequence_logprobs(model, ids, mask[:, :3])
    with pytest.raises(ValueError, match="completion_mask: expected only 0 and 1"):
        sequence_logprobs(model, ids, mask * 2)
    with pytest.raises(TypeError, match="ids: expected an integer tensor"):
        sequence_logprobs(model, ids.float(), mask)
    with pytest.raises(ValueError, match=r"ids: expected shape \(batch, seq\)"):
        sequence_logprobs(model, ids[0], mask)
    with pytest.raises(ValueError, match=r"rows \[0\] have no completion token"):
        sequence_logprobs(model, ids, torch.zeros_like(mask), average=True)
    with pytest.raises(ValueError, match="logits: expected shape"):
        token_logprobs(torch.zeros(1, 3, 5), ids)
