"""Speculative decoding: greedy output identical to the target alone and to transformers'
assisted generation; the sampling version keeps the target's distribution (exactly, and by a
chi-square test)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.generation import greedy
from roadmap_lib.inference.speculative import (
    accept_or_resample,
    output_distribution,
    speculative_generate,
)
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.models.hf import gpt_to_hf


def _gpt(vocab, d, layers, seed, scale=5.0, context=64):
    torch.manual_seed(seed)
    m = GPT(GPTConfig(vocab_size=vocab, context_length=context, d_model=d, n_layers=layers,
                      n_heads=2)).eval()
    with torch.no_grad():  # sharper, more varied distributions than the 0.02 initialisation
        for p in m.parameters():
            p.mul_(scale)
    return m


@pytest.fixture(scope="module")
def pair():
    return _gpt(30, 32, 2, 0), _gpt(30, 16, 1, 1)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_greedy_equals_target_alone(pair, k):
    target, draft = pair
    for seed in range(3):
        ids = torch.randint(0, 30, (1, 6), generator=torch.Generator().manual_seed(seed))
        got, stats = speculative_generate(target, draft, ids, 30, k=k)
        assert torch.equal(got, greedy(target, ids, 30))
        assert stats.rounds == stats.target_calls
        assert stats.accepted + stats.rounds == 30  # every round adds accepted + 1 tokens


def test_self_draft_accepts_everything(pair):
    target, _ = pair
    ids = torch.tensor([[1, 2, 3]])
    got, stats = speculative_generate(target, target, ids, 20, k=4)
    assert stats.acceptance_rate == 1.0 and stats.rounds == 4  # 5 tokens per round
    assert torch.equal(got, greedy(target, ids, 20))


def _hf_assisted(target, draft, ids, new, k):
    ht, hd = gpt_to_hf(target), gpt_to_hf(draft)
    for m in (ht, hd):
        m.generation_config.eos_token_id = m.generation_config.bos_token_id = None
        m.generation_config.pad_token_id = 0
    hd.generation_config.num_assistant_tokens = k
    hd.generation_config.num_assistant_tokens_schedule = "constant"
    return ht.generate(ids, assistant_model=hd, max_new_tokens=new, do_sample=False,
                       attention_mask=torch.ones_like(ids))


@pytest.mark.parametrize("k", [1, 4])
def test_greedy_equals_transformers_assisted_generation(pair, k):
    target, draft = pair
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    ours, _ = speculative_generate(target, draft, ids, 25, k=k)
    assert torch.equal(ours, _hf_assisted(target, draft, ids, 25, k))


def test_zoo_models_match_transformers():
    from roadmap_lib.zoo import load_char_gpt

    try:
        target, vocab, _ = load_char_gpt("gpt-char-jargon")
        draft, _, _ = load_char_gpt("gpt-char-draft")
    except FileNotFoundError:
        pytest.skip("zoo checkpoints not built")
    ids = torch.as_tensor(vocab.encode("The hacker "), dtype=torch.long)[None]
    ours, stats = speculative_generate(target, draft, ids, 40, k=4)
    assert torch.equal(ours, greedy(target, ids, 40, use_cache=True))
    assert torch.equal(ours, _hf_assisted(target, draft, ids, 40, 4))
    assert stats.acceptance_rate > 0.3  # a trained draft agrees with the target often


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 8), st.integers(0, 10_000))
def test_rejection_step_output_is_exactly_p(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(vocab, generator=g, dtype=torch.float64) ** 3
    q = torch.rand(vocab, generator=g, dtype=torch.float64) ** 3
    p, q = p / p.sum(), q / q.sum()
    torch.testing.assert_close(output_distribution(p, q), p, atol=1e-12, rtol=0)


def _chi2_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    stat = ((counts - expected) ** 2 / expected).sum()
    df = torch.tensor(float(len(counts) - 1), dtype=torch.float64)
    return float(torch.special.gammaincc(df / 2, stat / 2))


def test_sampling_preserves_the_target_distribution():
    """Two tokens after a fixed prompt, 2 000 runs: the counts of the 16 possible pairs fit the
    target's exact distribution (chi-square, 15 degrees of freedom), and the draft's own samples
    do not (so the test has the power to see a wrong sampler)."""
    vocab = 4
    target, draft = _gpt(vocab, 16, 1, 3, scale=2, context=8), _gpt(vocab, 16, 1, 4, scale=2, context=8)
    prompt = torch.tensor([[0, 1]])
    with torch.no_grad():
        p1 = torch.softmax(target(prompt)[0, -1].double(), -1)
        pairs = torch.stack([torch.tensor([[a]]).expand(1, 1) for a in range(vocab)])
        joint = torch.stack([p1[a] * torch.softmax(
            target(torch.cat([prompt, pairs[a]], 1))[0, -1].double(), -1) for a in range(vocab)])
        q1 = torch.softmax(draft(prompt)[0, -1].double(), -1)
        qjoint = torch.stack([q1[a] * torch.softmax(
            draft(torch.cat([prompt, pairs[a]], 1))[0, -1].double(), -1) for a in range(vocab)])
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(vocab * vocab, dtype=torch.float64)
    draft_counts = torch.zeros_like(counts)
    n = 2000
    for _ in range(n):
        out, _ = speculative_generate(target, draft, prompt, 2, k=2, temperature=1.0, generator=g)
        counts[out[0, 2] * vocab + out[0, 3]] += 1
    draft_counts += torch.multinomial(qjoint.flatten(), n, replacement=True, generator=g).bincount(
        minlength=vocab * vocab).double()
    assert (joint.flatten() * n).min() > 5  # chi-square's rule of thumb holds
    assert _chi2_pvalue(counts, joint.flatten()) > 1e-3
    assert _chi2_pvalue(draft_counts, joint.flatten()) < 1e-6


def test_errors(pair):
    target, draft = pair
    with pytest.raises(ValueError, match="ids"):
        speculative_generate(target, draft, torch.tensor([[1], [2]]), 3)
    with pytest.raises(ValueError, match="k: expected"):
        speculative_generate(target, draft, torch.tensor([[1]]), 3, k=0)
    with pytest.raises(ValueError, match="context length"):
        speculative_generate(target, draft, torch.tensor([[1] * 60]), 10)
    with pytest.raises(ValueError, match="vocabulary"):
        speculative_generate(target, _gpt(31, 16, 1, 0), torch.tensor([[1]]), 3)
    with pytest.raises(ValueError, match="p, q"):
        accept_or_resample(torch.ones(3) / 3, torch.ones(4) / 4, 0)
