"""Data loaders and the seeded task generators."""

import hashlib
import random

import pytest
import torch

from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.data import CharLMData, CharVocab, load_task, load_text, mlm_mask, span_corrupt, tasks_dir
from roadmap_lib.tasks import _zetan_lexicon, build, corpus_sentences, translation_pair




def test_vocab_roundtrip_and_errors():
    v = CharVocab.from_text("hello world")
    assert v.chars == " dehlorw" and len(v) == 8
    assert v.decode(v.encode("world hello")) == "world hello"
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        v.encode("zoo")
    with pytest.raises(ValueError, match=r"expected ids in \[0, 8\)"):
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


def test_shipped_task_files_are_reproducible(tmp_path):
    paths = build(tmp_path)
    for p in paths:
        shipped = tasks_dir() / p.relative_to(tmp_path)
        assert hashlib.sha256(p.read_bytes()).digest() == hashlib.sha256(shipped.read_bytes()).digest(), p


def test_translation_task():
    rows = {s: load_task("translation", s) for s in ("train", "val", "test")}
    assert [len(r) for r in rows.values()] == [8000, 1000, 1000]
    srcs = [set(r["src"] for r in part) for part in rows.values()]
    assert not (srcs[0] & srcs[1]) and not (srcs[0] & srcs[2])  # no leakage
    # the grammar: verb last in Zetan with a tense suffix; same lexicon everywhere
    lex = _zetan_lexicon(random.Random(0))
    src, tgt = translation_pair(random.Random(1), lex)
    assert tgt.split()[-1][-2:] in ("ta", "ru")
    for row in rows["train"][:200]:
        assert row["tgt"].split()[-1][-2:] in ("ta", "ru")
        assert len(row["tgt"].split()) == len(row["src"].split())  # one Zetan word per English word


def test_acceptability_task():
    rows = load_task("acceptability", "train")
    originals = set(corpus_sentences(load_text()))
    assert len(rows) == 5600
    labels = [r["label"] for r in rows]
    assert 0.45 < labels.count("1") / len(labels) < 0.55
    for r in rows[:300]:
        i, j = int(r["swap_i"]), int(r["swap_j"])
        assert (r["label"] == "1") == (i == j == -1)
        w = r["text"].split()
        if r["label"] == "0":
            w[i], w[j] = w[j], w[i]
        assert " ".join(w) in originals  # undoing the swap gives back a corpus sentence
    with pytest.raises(FileNotFoundError, match="tasks available"):
        load_task("nope", "train")


def test_intruder_task_shares_the_acceptability_sentences():
    for split in ("train", "test"):
        intruder, accept = load_task("intruder", split), load_task("acceptability", split)
        assert len(intruder) == len(accept)
        labels = [r["label"] for r in intruder]
        assert 0.45 < labels.count("1") / len(labels) < 0.55
        for r, a in zip(intruder[:400], accept[:400]):
            words, original = r["text"].split(), a["text"].split()
            i, j = int(a["swap_i"]), int(a["swap_j"])
            if i >= 0:
                original[i], original[j] = original[j], original[i]
            k = int(r["position"])
            assert (r["label"] == "1") == (k == -1)
            if k == -1:
                assert words == original
                continue
            # exactly one word differs, and the file names the word that was there
            assert [m for m in range(len(words)) if words[m] != original[m]] == [k]
            assert r["original"] and r["original"] in original[k]


def test_mlm_mask_proportions_and_specials():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (200, 100), generator=g)
    ids[:, 0] = 1  # a [CLS]-like special token
    inputs, labels = mlm_mask(ids, vocab_size=100, mask_id=4, special_ids=(1,), generator=g)
    chosen = labels != -100
    assert not chosen[:, 0].any() and (inputs[:, 0] == 1).all()
    assert 0.14 < chosen.float().mean() < 0.16
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(inputs[~chosen], ids[~chosen])
    masked = (inputs == 4)[chosen].float().mean()
    kept = (inputs == ids)[chosen].float().mean()
    assert 0.77 < masked < 0.83 and 0.08 < kept < 0.13  # 10 % kept (+ random draws of the same id)
    with pytest.raises(ValueError, match="p: expected"):
        mlm_mask(ids, vocab_size=100, mask_id=4, p=1.5)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 60), density=st.floats(0.05, 0.95), seed=st.integers(0, 1000))
def test_span_corruption_roundtrip(n, density, seed):
    ids = list(range(100, 100 + n))
    sentinels = list(range(-1, -21, -1))
    inputs, targets = span_corrupt(ids, sentinel_ids=sentinels, noise_density=density,
                                   generator=torch.Generator().manual_seed(seed))
    # filling each sentinel of the input with what follows it in the target gives back ids
    spans, current = {}, None
    for t in targets:
        if t < 0:
            current = t
            spans[t] = []
        else:
            spans[current].append(t)
    rebuilt = [x for t in inputs for x in (spans[t] if t < 0 else [t])]
    assert rebuilt == ids
    assert all(len(v) >= 1 for v in spans.values())
    assert len(targets) - len(spans) == min(n - 1, max(1, round(n * density)))
