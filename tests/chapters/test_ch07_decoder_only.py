"""Sample statistics and the temperature sweep driver used by chapter 07."""

import torch

from roadmap_lib.chapters.ch07_decoder_only.analysis import (
    corpus_words,
    sample_stats,
    temperature_sweep,
)
from roadmap_lib.data import CharVocab
from roadmap_lib.models import GPT, GPTConfig


def test_sample_stats():
    words = corpus_words("The hacker wrote a Program. the program ran!")
    assert words == {"the", "hacker", "wrote", "a", "program", "ran"}
    s = sample_stats("the hacker zqxw program", words)
    assert s["word_rate"] == 0.75
    assert sample_stats("abababababab", words)["distinct"] == 2 / 9
    assert sample_stats("abcdefgh", words)["distinct"] == 1.0


def test_temperature_sweep_rows():
    torch.manual_seed(0)
    vocab = CharVocab.from_text("abcdefgh ")
    model = GPT(GPTConfig(vocab_size=len(vocab), context_length=16, d_model=16, n_layers=1, n_heads=2))
    rows = temperature_sweep(model, vocab, ["abc def", "gh ab"], [0.5, 2.0], new_tokens=20,
                             vocabulary={"abc"})
    assert [r["temperature"] for r in rows] == [0.5, 2.0]
    assert all(len(r["sample"]) == 20 and 0 <= r["word_rate"] <= 1 for r in rows)
    again = temperature_sweep(model, vocab, ["abc def", "gh ab"], [0.5, 2.0], new_tokens=20,
                              vocabulary={"abc"})
    assert rows == again  # seeded
