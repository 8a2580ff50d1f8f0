"""Data loaders and the seeded task generators."""


import importlib
from pathlib import Path

import pytest
import torch

import roadmap_lib
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




def test_char_lm_batches_reach_every_window_including_the_last():
    # 20 characters, val 0.3 -> train split "abcdefghijklmn" (14 chars); context 4 gives 10 windows,
    # starts 0..9; the last one reads "jklm" and predicts "klmn" (ends on the split's last character)
    text = "abcdefghijklmnopqrst"
    data = CharLMData(text, context=4, batch_size=200, val_fraction=0.3)
    x, y = data.get_batch("train", torch.Generator().manual_seed(0))
    assert {data.vocab.decode(row) for row in x} == {text[i : i + 4] for i in range(10)}
    assert "klmn" in {data.vocab.decode(row) for row in y}


def test_legacy_sampler_reproduces_the_draws_from_before_the_fix():
    # the bound before the fix was len - context - 1: same generator, same draws, last window never
    text = "abcdefghijklmnopqrst"
    old = CharLMData(text, context=4, batch_size=200, val_fraction=0.3, legacy_starts=True)
    x, _ = old.get_batch("train", torch.Generator().manual_seed(0))
    starts = torch.randint(0, 14 - 4 - 1, (200,), generator=torch.Generator().manual_seed(0))
    assert [old.vocab.decode(row) for row in x] == [text[i : i + 4] for i in starts.tolist()]
    assert "jklm" not in {old.vocab.decode(row) for row in x}
    new = CharLMData(text, context=4, batch_size=200, val_fraction=0.3)
    assert not torch.equal(new.get_batch("train", torch.Generator().manual_seed(0))[0], x)


def test_only_the_listed_artifact_builders_use_the_legacy_sampler():
    from roadmap_lib.chapters import artifacts
    from roadmap_lib.data import LEGACY_SAMPLER_ARTIFACTS

    root = Path(roadmap_lib.__file__).resolve().parent.parent
    named = set()
    for path in [*root.glob("roadmap_lib/**/*.py"), *root.glob("notebooks/*.py"), *root.glob("benchmarks/*.py")]:
        text = path.read_text(encoding="utf-8")
        if path.name == "data.py" or "legacy_starts=True" not in text:
            continue
        where = path.relative_to(root).as_posix()
        assert where.startswith("roadmap_lib/chapters/"), f"{where}: legacy_starts=True outside an artifact builder"
        notes = " ".join(line for line in text.splitlines() if line.strip().startswith("# legacy_starts:"))
        mine = {name for name in LEGACY_SAMPLER_ARTIFACTS if f" {name} " in notes}
        assert mine, f"{where}: uses the legacy sampler without naming its listed artifact beside the call"
        named |= mine
    assert named == set(LEGACY_SAMPLER_ARTIFACTS), "a listed artifact that no builder pins: drop it from the list"
    registered = artifacts()
    assert set(LEGACY_SAMPLER_ARTIFACTS) <= set(registered), "a listed artifact that is not registered"
