"""Data loaders and the seeded task generators."""


import pytest
import torch

from roadmap_lib.data import CharLMData, CharVocab, load_text


def test_vocab_roundtrip_and_errors():
    v = CharVocab.from_text("hello world")
    assert v.chars == " dehlorw" and len(v) == 8
    assert v.decode(v.encode("world hello")) == "world hello"
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        v.encode("zoo")
    with pytest.raises(ValueError, match=r"out of range \[0, 8\)"):
        v.decode([3, 8])


def test_char_lm_batches_are_shifted_and_seeded():
    data = CharLMData(context=16, batch_size=5)
    text = load_text()
    assert len(data.vocab) < 200 and len(data.splits["val"]) == int(0.1 * len(text))
    x, y = data.get_batch("train", torch.Generator().manual_seed(3))
    assert x.shape == y.shape == (5, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert data.vocab.decode(x[0]) in text
    x2, _ = data.get_batch("train", torch.Generator().manual_seed(3))
    x3, _ = data.get_batch("train", torch.Generator().manual_seed(4))
    assert torch.equal(x, x2) and not torch.equal(x, x3)
    xv, _ = data.get_batch("val", torch.Generator().manual_seed(3))
    assert data.vocab.decode(xv[0]) in text[-len(data.splits["val"]) :]
    with pytest.raises(ValueError, match="split"):
        data.get_batch("test")
    with pytest.raises(ValueError, match="fewer than context"):
        CharLMData("abc" * 10, context=16)




@pytest.mark.xfail(strict=True, reason=(
    "known defect (issue 12): get_batch never draws the last window. The one-line fix changes every "
    "seeded batch, so it lands together with rebuilding the artifacts whose recorded numbers depend on "
    "them (03-extrapolation, gpt-char-jargon, scaling-sweep-jargon, gpt-char-distilled, ch12-sweep, "
    "gpt-char-draft, 16-peft-sweep, 17-continual) and re-checking chapters 12, 14 and 16's live runs. "
    "strict: once fixed, this marker must go"))
def test_char_lm_batches_reach_every_window_including_the_last():
    # 20 characters, val 0.3 -> train split "abcdefghijklmn" (14 chars); context 4 gives 10 windows,
    # starts 0..9; the last one reads "jklm" and predicts "klmn" (ends on the split's last character)
    text = "abcdefghijklmnopqrst"
    data = CharLMData(text, context=4, batch_size=200, val_fraction=0.3)
    x, y = data.get_batch("train", torch.Generator().manual_seed(0))
    assert {data.vocab.decode(row) for row in x} == {text[i : i + 4] for i in range(10)}
    assert "klmn" in {data.vocab.decode(row) for row in y}
