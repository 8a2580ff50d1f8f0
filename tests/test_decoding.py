"""generate() with processors against transformers' generate (same weights), stopping criteria,
and contrastive search against its definition (transformers 5 no longer ships it in-library)."""

import pytest
import torch
import torch.nn.functional as F
from test_generation import VOCAB, tiny_gpt2

from roadmap_lib.decoding import (
    MaxTime,
    StopOnStrings,
    contrastive_search,
    generate,
    with_hidden_states,
)
from roadmap_lib.generation import greedy, sample
from roadmap_lib.logits_processors import make_pipeline
from roadmap_lib.models.gpt import GPT, GPTConfig
from roadmap_lib.models.hf import gpt_to_hf

hf = pytest.fixture(scope="module", name="hf")(tiny_gpt2)


def _logits(hf):
    return lambda ids: hf(ids).logits


def _hf_generate(hf, ids, **kw):
    with torch.no_grad():
        return hf.generate(ids, attention_mask=torch.ones_like(ids), eos_token_id=None, pad_token_id=0, **kw)


@pytest.mark.parametrize("kw", [
    {"repetition_penalty": 1.5}, {"no_repeat_ngram_size": 2}, {"no_repeat_ngram_size": 3},
    {"repetition_penalty": 0.7, "no_repeat_ngram_size": 4},
])
def test_greedy_with_penalties_equals_transformers(hf, kw):
    ids = torch.randint(2, VOCAB, (3, 4), generator=torch.Generator().manual_seed(1))
    ours = generate(_logits(hf), ids, 25, processors=make_pipeline(**kw))
    theirs = _hf_generate(hf, ids, max_new_tokens=25, do_sample=False, **kw)
    assert torch.equal(ours, theirs)
    assert not torch.equal(ours, greedy(_logits(hf), ids, 25))  # the penalty changed something


@pytest.mark.parametrize("kw", [
    {"temperature": 0.8, "min_p": 0.1}, {"typical_p": 0.7}, {"epsilon_cutoff": 0.02},
    {"eta_cutoff": 0.02, "temperature": 1.3}, {"top_p": 0.8, "min_p": 0.05, "repetition_penalty": 1.2},
])
def test_sampling_with_warpers_equals_transformers(hf, kw):
    """Same global seed, same draws: transformers samples with torch.multinomial on the global RNG."""
    ids = torch.randint(2, VOCAB, (4, 3), generator=torch.Generator().manual_seed(2))
    ours_kw = {{"epsilon_cutoff": "epsilon", "eta_cutoff": "eta"}.get(k, k): v for k, v in kw.items()}
    torch.manual_seed(11)
    ours = generate(_logits(hf), ids, 20, processors=make_pipeline(**ours_kw), do_sample=True)
    torch.manual_seed(11)
    theirs = _hf_generate(hf, ids, max_new_tokens=20, do_sample=True, top_k=0, **kw)
    assert torch.equal(ours, theirs)


def test_generate_matches_greedy_and_sample(hf):
    ids = torch.tensor([[3, 4, 5], [6, 7, 8]])
    assert torch.equal(generate(_logits(hf), ids, 10), greedy(_logits(hf), ids, 10))
    a = generate(_logits(hf), ids, 10, processors=make_pipeline(temperature=0.9, top_k=5), do_sample=True,
                 generator=torch.Generator().manual_seed(4))
    b = sample(_logits(hf), ids, 10, temperature=0.9, top_k=5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)


def test_stop_strings_end_each_row_and_pad():
    chars = "abc."
    decode = lambda row: "".join(chars[i] for i in row.tolist())
    # a "model" that spells a fixed sequence per row: row r emits token (step + r) % 4
    def model(ids):
        step, rows = ids.shape[1], torch.arange(ids.shape[0])
        nxt = (step + rows) % 4
        return F.one_hot(nxt, 4).float()[:, None, :].expand(-1, ids.shape[1], -1) * 10
    ids = torch.zeros(2, 1, dtype=torch.long)
    out = generate(model, ids, 10, stopping=[StopOnStrings(["c."], decode, prompt_length=1)], pad_token_id=0)
    texts = [decode(r[1:]) for r in out]
    assert texts[0].startswith("bc.") and texts[0][3:] == "a" * (len(texts[0]) - 3)
    assert texts[1].startswith("c.")
    assert out.shape[1] == 1 + 3  # both finished after 3 steps: generation ended there
    with pytest.raises(ValueError, match="strings"):
        StopOnStrings("c.", decode, 1)
    with pytest.raises(ValueError, match="pad_token_id"):
        generate(model, ids, 3, stopping=[StopOnStrings(["c"], decode, 1)])


def test_max_time_stops_everything():
    ticks = iter(range(100))
    stop = MaxTime(3.0, clock=lambda: float(next(ticks)))
    model = lambda ids: torch.zeros(ids.shape[0], ids.shape[1], 5)
    out = generate(model, torch.zeros(2, 1, dtype=torch.long), 50, stopping=[stop], pad_token_id=0)
    assert out.shape[1] == 1 + 4  # checked after steps 1..4 at t = 0, 1, 2, 3
    with pytest.raises(ValueError, match="max_time"):
        MaxTime(0)


def _hf_hidden(hf):
    def run(ids):
        out = hf(ids, output_hidden_states=True)
        return out.logits, out.hidden_states[-1]
    return run


def test_contrastive_alpha_zero_is_greedy(hf):
    ids = torch.randint(2, VOCAB, (2, 4), generator=torch.Generator().manual_seed(5))
    assert torch.equal(contrastive_search(_hf_hidden(hf), ids, 12, top_k=4, alpha=0.0),
                       greedy(_logits(hf), ids, 12))


def test_contrastive_follows_its_definition(hf):
    """Brute force: for each step, score every top-k candidate by hand, one forward pass each."""
    ids = torch.randint(2, VOCAB, (1, 5), generator=torch.Generator().manual_seed(6))
    out = contrastive_search(_hf_hidden(hf), ids, 8, top_k=5, alpha=0.6)
    seq = ids[0].tolist()
    with torch.no_grad():
        for _ in range(8):
            o = hf(torch.tensor([seq]), output_hidden_states=True)
            probs = o.logits[0, -1].softmax(-1)
            best, best_score = None, -float("inf")
            for v in probs.topk(5).indices.tolist():
                h = hf(torch.tensor([seq + [v]]), output_hidden_states=True).hidden_states[-1][0]
                degeneration = max(F.cosine_similarity(h[-1], h[j], dim=0).item() for j in range(len(seq)))
                score = 0.4 * probs[v].item() - 0.6 * degeneration
                if score > best_score:
                    best, best_score = v, score
            seq.append(best)
    assert out[0].tolist() == seq
    assert out[0].tolist() != greedy(_logits(hf), ids, 8)[0].tolist()


def test_contrastive_same_on_our_gpt_and_its_transformers_copy():
    torch.manual_seed(1)
    ours = GPT(GPTConfig(vocab_size=30, context_length=32, d_model=32, n_layers=2, n_heads=2)).eval()
    theirs = gpt_to_hf(ours).eval()
    ids = torch.randint(0, 30, (2, 6), generator=torch.Generator().manual_seed(0))
    a = contrastive_search(with_hidden_states(ours), ids, 10, top_k=4, alpha=0.5)
    b = contrastive_search(_hf_hidden(theirs), ids, 10, top_k=4, alpha=0.5)
    assert torch.equal(a, b)
    # past the context window it keeps going on the last context_length - 1 tokens
    long = contrastive_search(with_hidden_states(ours), ids, 40, top_k=3, alpha=0.5, context_length=32)
    assert long.shape == (2, 46)


def test_contrastive_bad_parameters(hf):
    ids = torch.tensor([[2, 3]])
    with pytest.raises(ValueError, match="alpha"):
        contrastive_search(_hf_hidden(hf), ids, 2, alpha=1.5)
    with pytest.raises(ValueError, match="top_k"):
        contrastive_search(_hf_hidden(hf), ids, 2, top_k=0)
    with pytest.raises(TypeError, match="layer"):
        with_hidden_states(torch.nn.Linear(2, 2))
