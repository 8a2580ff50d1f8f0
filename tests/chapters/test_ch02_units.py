"""Chapter 02's characters-versus-BPE comparison (roadmap_lib.chapters.ch02_tokenization_embeddings.units)."""

from __future__ import annotations

import pytest
import torch

from roadmap_lib.chapters.ch02_tokenization_embeddings import units
from roadmap_lib.chapters.ch02_tokenization_embeddings.embeddings import train_lm
from roadmap_lib.measure import cpu_threads
from roadmap_lib.tokenizers import CharTokenizer


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


def test_equal_context():
    assert units.equal_context(2.3197) == 37 and units.equal_context(1.0) == 16
    assert units.equal_context(2.5, tokens=4) == 10
    with pytest.raises(ValueError, match="chars_per_token: expected a positive number"):
        units.equal_context(0)
    with pytest.raises(ValueError, match="tokens: expected a positive int"):
        units.equal_context(2.0, tokens=0)


def test_evaluating_during_training_does_not_change_the_run():
    text = "the hacker wrote a kludge and the kludge worked. " * 40
    tok = CharTokenizer().train(text)
    ids = torch.tensor(tok.encode(text))
    held = torch.tensor(tok.encode(text[:300]))
    kw = {"context": 8, "steps": 30, "seed": 3, "progress": False, "d_embed": 8, "d_hidden": 16}
    _, losses_a, curve_a = units.train_and_score(tok, ids, held, 300, eval_every=10, **kw)
    _, losses_b, curve_b = units.train_and_score(tok, ids, held, 300, **kw)
    assert losses_a == losses_b and [s for s, _ in curve_a] == [10, 20, 30] and curve_a[-1] == curve_b[-1]
    assert curve_a[0][1] > curve_a[-1][1]  # held-out bpc falls as it trains
    with pytest.raises(ValueError, match="callback: expected a function"):
        train_lm(units.TinyLM(units.TinyLMConfig(tok.vocab_size, context=8)), ids, steps=2, eval_every=1)
    with pytest.raises(ValueError, match="eval_every: expected a non-negative int"):
        train_lm(units.TinyLM(units.TinyLMConfig(tok.vocab_size, context=8)), ids, steps=2, eval_every=-1)


def test_shipped_results_read_back_and_plot():
    info = units.load_results()
    c = units.curves(info)
    assert c["char"].shape == c["bpe"].shape == (len(info["seeds"]), info["recipe"]["steps"] // info["recipe"]["eval_every"])
    assert c["steps"][-1] == info["recipe"]["steps"]
    assert info["recipe"]["char_context_chars"] == units.equal_context(info["recipe"]["train_chars_per_bpe_token"])
    axes = units.plot_curves(info)
    assert len(axes[0].lines) == len(axes[1].lines) == 2 * len(info["seeds"])
    with pytest.raises(FileNotFoundError, match="build 02-units"):
        units.load_results(units.DATA_DIR / "missing.json")
