"""Chapter 01's task and models."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.chapters.ch01_why_transformers.recall import (
    AttentionRecall,
    LSTMRecall,
    RecallConfig,
    last_position_attention,
    make_recall_batch,
    sequential_steps,
)


@settings(max_examples=30, deadline=None)
@given(seq_len=st.integers(2, 40), vocab=st.integers(2, 20), seed=st.integers(0, 10_000))
def test_target_is_the_symbol_k_steps_back(seq_len, vocab, seed):
    cfg = RecallConfig(vocab=vocab, seq_len=seq_len)
    symbols, distance, target = make_recall_batch(8, cfg, generator=torch.Generator().manual_seed(seed))
    assert symbols.shape == (8, seq_len) and distance.shape == target.shape == (8,)
    assert ((0 <= distance) & (distance < seq_len)).all()
    for b in range(8):
        assert target[b] == symbols[b, seq_len - 1 - distance[b]]


def test_fixed_distance_and_bad_input():
    cfg = RecallConfig()
    _, distance, _ = make_recall_batch(4, cfg, distance=5)
    assert (distance == 5).all()
    with pytest.raises(ValueError, match="distance"):
        make_recall_batch(4, cfg, distance=cfg.seq_len)
    with pytest.raises(ValueError, match="batch"):
        make_recall_batch(0, cfg)


def test_the_question_only_changes_the_last_position():
    cfg = RecallConfig()
    model = AttentionRecall(cfg)
    symbols, _, _ = make_recall_batch(2, cfg)
    a = model.embed(symbols, torch.tensor([1, 2]))
    b = model.embed(symbols, torch.tensor([3, 4]))
    assert torch.equal(a[:, :-1], b[:, :-1]) and not torch.equal(a[:, -1], b[:, -1])


def test_both_models_read_the_whole_sequence():
    # Changing the first symbol changes both models' logits (if only a little, for the LSTM at init).
    torch.manual_seed(0)
    cfg = RecallConfig()
    for model in (LSTMRecall(cfg), AttentionRecall(cfg)):
        symbols, distance, _ = make_recall_batch(1, cfg)
        other = symbols.clone()
        other[0, 0] = (other[0, 0] + 1) % cfg.vocab
        assert not torch.equal(model(symbols, distance), model(other, distance))


def test_attention_weights_are_distributions():
    cfg = RecallConfig()
    model = AttentionRecall(cfg)
    symbols, distance, _ = make_recall_batch(3, cfg)
    w = last_position_attention(model, symbols, distance)
    assert w.shape == (cfg.n_layers, 3, cfg.n_heads, cfg.seq_len)
    torch.testing.assert_close(w.sum(-1), torch.ones(cfg.n_layers, 3, cfg.n_heads))


def test_sequential_steps():
    cfg = RecallConfig(seq_len=10)
    assert sequential_steps(LSTMRecall(cfg), 10) == 10 * cfg.n_layers
    assert sequential_steps(AttentionRecall(cfg), 10) == cfg.n_layers
    with pytest.raises(TypeError, match="model"):
        sequential_steps(torch.nn.Linear(2, 2), 10)
