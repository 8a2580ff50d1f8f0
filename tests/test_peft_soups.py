"""Model soups: the uniform soup is the elementwise mean of the ingredients' weights; the greedy
soup keeps an ingredient only if the held-out score does not drop."""

import copy

import pytest
import torch

from roadmap_lib import peft as rp
from roadmap_lib.models import GPT, GPTConfig


def fine_tuned_copies(n=3):
    torch.manual_seed(0)
    base = GPT(GPTConfig(vocab_size=20, context_length=8, d_model=16, n_layers=1, n_heads=2))
    copies = []
    for i in range(n):
        m = copy.deepcopy(base)
        g = torch.Generator().manual_seed(i)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=g))
        copies.append(m)
    return copies


def test_uniform_soup_is_the_mean():
    models = fine_tuned_copies()
    soup = rp.uniform_soup(models)
    for name, p in soup.named_parameters():
        mean = torch.stack([dict(m.named_parameters())[name] for m in models]).mean(0)
        torch.testing.assert_close(p, mean, atol=0, rtol=0)
    assert soup.lm_head.weight is soup.wte.weight  # the copy keeps its tied weights
    assert soup is not models[0]
    one = rp.uniform_soup(models[:1])
    for a, b in zip(one.parameters(), models[0].parameters()):
        assert torch.equal(a, b)


def test_greedy_soup_keeps_what_helps_and_skips_what_hurts():
    models = fine_tuned_copies()
    with torch.no_grad():
        for p in models[2].parameters():
            p.add_(5.0)  # far away: averaging it in moves the soup off the basin
    target = rp.average_state_dicts([models[0].state_dict(), models[1].state_dict()])

    def score(m):  # higher is better: closeness to the average of the first two
        return -sum((v - target[k]).pow(2).sum().item() for k, v in m.state_dict().items())

    soup, chosen = rp.greedy_soup(models, score)
    assert sorted(chosen) == [0, 1]
    assert score(soup) == pytest.approx(0.0, abs=1e-9)
    assert score(soup) > max(score(m) for m in models)


def test_refusals():
    models = fine_tuned_copies(2)
    with pytest.raises(TypeError, match="models: expected copies of one architecture"):
        rp.uniform_soup([models[0], torch.nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="states: expected at least one state dict"):
        rp.average_state_dicts([])
    with pytest.raises(ValueError, match=r"states\[1\]: expected the keys of states\[0\]"):
        rp.average_state_dicts([{"a": torch.ones(1)}, {"b": torch.ones(1)}])
    with pytest.raises(ValueError, match=r"states\[1\]\['a'\]: expected shape \(1,\)"):
        rp.average_state_dicts([{"a": torch.ones(1)}, {"a": torch.ones(2)}])
    with pytest.raises(ValueError, match="non-float tensor 'n' differs"):
        rp.average_state_dicts([{"n": torch.tensor(1)}, {"n": torch.tensor(2)}])
    assert rp.average_state_dicts([{"n": torch.tensor(3)}] * 2)["n"] == 3
