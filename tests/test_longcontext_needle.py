"""Needle-in-a-haystack windows, scores and training loss (roadmap_lib.longcontext)."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.longcontext import (
    NeedleTask,
    needle_batches,
    needle_loss,
    needle_scores,
    needle_windows,
)
from roadmap_lib.objectives import lm_loss

CHARS = " .abcdefghijklmnopqrstuvwxyz0123456789"
HAY = torch.tensor([CHARS.index(c) for c in ("haystack text goes on and on " * 40)])


def encode(text: str) -> torch.Tensor:
    return torch.tensor([CHARS.index(c) for c in text])


def decode(ids) -> str:
    return "".join(CHARS[i] for i in ids.tolist())


@settings(max_examples=25, deadline=None)
@given(length=st.integers(36, 200), depth=st.floats(0, 1), seed=st.integers(0, 1000))
def test_windows_hold_needle_at_depth_and_end_with_the_key(length, depth, seed):
    task = NeedleTask()
    ids = needle_windows(HAY, encode, length, depth, 3, generator=torch.Generator().manual_seed(seed))
    assert ids.shape == (3, length + 1)
    hay_len = length + 1 - task.overhead()
    for row in ids:
        text = decode(row)
        key = text[-task.key_len:]
        assert key.isdigit() and text.endswith(task.query.format(key=key))
        needle = task.needle.format(key=key)
        cut = round(depth * hay_len)
        assert text[cut:cut + len(needle)] == needle  # after `cut` characters of haystack


def test_depth_per_window_and_fresh_keys():
    g = torch.Generator().manual_seed(0)
    ids = needle_windows(HAY, encode, 100, torch.tensor([0.0, 1.0]), 2, generator=g)
    a, b = decode(ids[0]), decode(ids[1])
    assert a.startswith(" the key is ")  # depth 0: the needle opens the window
    hay_len = 101 - NeedleTask().overhead()
    assert b[hay_len:].startswith(" the key is ") and b[hay_len:].count("key is") == 2  # depth 1: right before the query
    keys = {decode(r[-5:]) for r in needle_windows(HAY, encode, 64, 0.5, 50, generator=g)}
    assert len(keys) > 40  # 5 random digits per window


def test_scores_align_targets_with_the_key():
    ids = needle_windows(HAY, encode, 80, 0.3, 4, generator=torch.Generator().manual_seed(1))
    vocab = len(CHARS)

    def oracle(x):  # puts weight 20 on the true next character
        full = ids[:, : x.shape[1] + 1]
        return 20.0 * F.one_hot(full[:, 1:], vocab).float()

    def off_by_one(x):  # predicts the current character instead of the next
        return 20.0 * F.one_hot(x, vocab).float()

    loss, found = needle_scores(oracle, ids, 5)
    assert found.all() and (loss < 1e-6).all()
    loss, found = needle_scores(off_by_one, ids, 5)
    assert not found.any() and (loss > 10).all()
    uniform = needle_scores(lambda x: torch.zeros(*x.shape, vocab), ids, 5)[0]
    torch.testing.assert_close(uniform, torch.full((4,), math.log(vocab)))


def test_needle_loss_is_lm_loss_at_the_natural_weight_and_the_key_loss_at_one():
    torch.manual_seed(0)
    logits = torch.randn(3, 20, 11)
    targets = torch.randint(0, 11, (3, 20))

    def model(_):
        return logits

    torch.testing.assert_close(needle_loss(5, 5 / 20)(model, None, targets), lm_loss(model, None, targets))
    key_only = F.cross_entropy(logits[:, -5:].transpose(1, 2), targets[:, -5:])
    torch.testing.assert_close(needle_loss(5, 1.0)(model, None, targets), key_only)


def test_needle_batches_are_shifted_windows():
    get_batch = needle_batches({"train": HAY, "val": HAY}, encode, 48, 6)
    x, y = get_batch("train", torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (6, 48)
    assert torch.equal(x[:, 1:], y[:, :-1])
    x2, _ = get_batch("train", torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)  # seeded
    with pytest.raises(ValueError, match="split"):
        get_batch("test")


def test_errors():
    with pytest.raises(ValueError, match="hay"):
        needle_windows(HAY[None], encode, 64, 0.5, 2)
    with pytest.raises(ValueError, match="depth"):
        needle_windows(HAY, encode, 64, 1.5, 2)
    with pytest.raises(ValueError, match="depth: expected 2"):
        needle_windows(HAY, encode, 64, torch.tensor([0.1, 0.2, 0.3]), 2)
    with pytest.raises(ValueError, match="length: expected at least"):
        needle_windows(HAY, encode, 10, 0.5, 2)
    with pytest.raises(ValueError, match="hay: expected more than"):
        needle_windows(HAY[:50], encode, 200, 0.5, 2)
    with pytest.raises(ValueError, match="n: expected"):
        needle_windows(HAY, encode, 64, 0.5, 0)
    with pytest.raises(ValueError, match="query"):
        NeedleTask(query="{key} is the key")
    with pytest.raises(ValueError, match="needle"):
        NeedleTask(needle="no key here")
    with pytest.raises(ValueError, match="key_chars"):
        NeedleTask(key_chars="1")
    with pytest.raises(ValueError, match="key_len"):
        needle_scores(lambda x: x, torch.zeros(2, 5, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="ids"):
        needle_scores(lambda x: x, torch.zeros(5, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="key_weight"):
        needle_loss(5, 1.5)
    with pytest.raises(ValueError, match="hay"):
        needle_batches(HAY, encode, 64, 2)


def test_plot_needle_grid():
    import matplotlib

    matplotlib.use("Agg")
    from roadmap_lib.longcontext import plot_needle_grid

    ax = plot_needle_grid([[1.0, 0.5], [0.0, 0.25], [0.1, 0.2]], [64, 128, 256], [0.0, 1.0], train_len=64, title="t")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["64 (1x)", "128 (2x)", "256 (4x)"]
    assert len(ax.texts) == 6 and ax.texts[1].get_text() == "0.50"
    with pytest.raises(ValueError, match="found: expected shape"):
        plot_needle_grid([[1.0, 0.5]], [64, 128], [0.0, 1.0])


def _tiny_lm(vocab=12):
    from roadmap_lib.models.llama import Llama, LlamaConfig

    torch.manual_seed(0)
    return Llama(LlamaConfig(vocab_size=vocab, context_length=64, d_model=16, n_layers=1, n_heads=2)).eval()


def test_cut_context_equals_full_when_the_window_covers_everything():
    from roadmap_lib.longcontext import cut_context_loss, loss_per_position

    ids = torch.randint(0, 12, (3, 21), generator=torch.Generator().manual_seed(0))
    model = _tiny_lm()
    torch.testing.assert_close(cut_context_loss(model, ids, 20), loss_per_position(model, ids))
    cut, full = cut_context_loss(model, ids, 5), loss_per_position(model, ids)
    torch.testing.assert_close(cut[:5], full[:5])  # positions inside the window see the same past
    assert not torch.allclose(cut[5:], full[5:])  # later ones lose their old context


def test_cut_context_matches_a_window_by_hand():
    from roadmap_lib.longcontext import cut_context_loss

    ids = torch.randint(0, 12, (2, 13), generator=torch.Generator().manual_seed(1))
    model = _tiny_lm()
    t, w = 9, 4
    want = F.cross_entropy(model(ids[:, t - w + 1:t + 1])[:, -1], ids[:, t + 1])
    torch.testing.assert_close(cut_context_loss(model, ids, w)[t], want)
    with pytest.raises(ValueError, match="window"):
        cut_context_loss(model, ids, 0)
    with pytest.raises(ValueError, match="ids"):
        cut_context_loss(model, ids[0], 3)
