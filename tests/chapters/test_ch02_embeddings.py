"""The tiny language model of chapter 02: shapes, tying, bits per character, PCA."""

from __future__ import annotations

import math

import pytest
import torch

from roadmap_lib.chapters.ch02_tokenization_embeddings.embeddings import (
    TinyLM,
    TinyLMConfig,
    bits_per_char,
    pca_2d,
    train_lm,
    windows,
)
from roadmap_lib.measure import count_parameters, cpu_threads


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models: one thread is much faster than two fighting over a busy CPU.
    with cpu_threads(1):
        yield


def test_windows_are_left_padded_histories():
    x, y = windows(torch.tensor([5, 6, 7]), context=2, pad_id=0)
    assert x.tolist() == [[0, 0], [0, 5], [5, 6]] and y.tolist() == [5, 6, 7]


def test_tying_shares_the_matrix_and_saves_v_times_d():
    untied = TinyLM(TinyLMConfig(100, context=4, d_embed=8, d_hidden=16))
    tied = TinyLM(TinyLMConfig(100, context=4, d_embed=8, d_hidden=16, tie=True))
    assert tied.lm_head.weight is tied.wte.weight
    assert count_parameters(untied) - count_parameters(tied) == 100 * 8
    assert untied(torch.zeros(3, 4, dtype=torch.long)).shape == (3, 100)
    with pytest.raises(ValueError, match=r"idx: expected shape \(batch, 4\), got \(3, 5\)"):
        untied(torch.zeros(3, 5, dtype=torch.long))


def test_bits_per_char_of_a_uniform_model():
    model = TinyLM(TinyLMConfig(64, context=3, d_embed=8, d_hidden=8))
    torch.nn.init.zeros_(model.lm_head.weight)  # all logits equal: P = 1/64 per token
    ids = torch.randint(0, 64, (50,))
    # 50 tokens of 6 bits each over a text of 100 characters: 3 bits per character
    assert bits_per_char(model, ids, n_chars=100) == pytest.approx(50 * math.log2(64) / 100)


def test_training_lowers_the_loss_and_pca_shapes():
    torch.manual_seed(0)
    ids = torch.tensor([1, 2, 3, 4] * 100)  # perfectly predictable
    model = TinyLM(TinyLMConfig(8, context=4, d_embed=8, d_hidden=32))
    losses = train_lm(model, ids, steps=150, batch=32, lr=1e-2, progress=False)
    assert losses[-1] < 0.1 * losses[0]
    assert pca_2d(model.wte.weight).shape == (8, 2)
    with pytest.raises(ValueError, match="weight: expected a 2-D"):
        pca_2d(torch.zeros(2, 3, 4))
