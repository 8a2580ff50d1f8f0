"""Chapter 08's text-to-text pieces: the vocabulary, both noises, batches, tasks, the shipped checkpoints."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.chapters.ch08_text_to_text import multitask as t2t_multitask
from roadmap_lib.chapters.ch08_text_to_text import pretrain as t2t_pretrain
from roadmap_lib.chapters.ch08_text_to_text.common import (
    EOS,
    MASK,
    PAD,
    SENTINELS,
    UNK,
    T2TVocab,
    bart_noise,
    heldout_sentences,
    load,
    make_batch,
    t5_noise,
)
from roadmap_lib.data import load_task

WORDS = list(range(30, 90))  # ordinary word ids, clear of the specials
seqs = st.lists(st.sampled_from(WORDS), min_size=2, max_size=40)


@pytest.fixture(scope="module")
def vocab():
    return T2TVocab(["the", "jargon", "file", "translate", "english", "to", "zetan", "fix", "word", "order"])


def test_vocab_round_trip_specials_and_unknowns(vocab):
    text = "The Jargon file, <mask> <extra_id_3> zzz-unknown"
    ids = vocab.encode(text)
    assert ids[:3] == [vocab.stoi["the"], vocab.stoi["jargon"], vocab.stoi["file"]]
    assert ids[3] == MASK and ids[4] == SENTINELS[3] and ids[5] == UNK
    assert vocab.decode(ids) == "the jargon file <unk>"
    assert vocab.decode(ids, keep_special=True) == "the jargon file <mask> <extra_id_3> <unk>"
    assert vocab.decode(ids + [EOS, vocab.stoi["the"]]) == vocab.decode(ids)  # stops at </s>
    assert vocab.decode([PAD, *ids[:1], PAD]) == "the"
    assert vocab.normalized("THE (file).") == "the file"
    with pytest.raises(TypeError, match="text"):
        vocab.encode(["the"])
    with pytest.raises(ValueError, match="ids"):
        vocab.decode([len(vocab)])


@settings(max_examples=60, deadline=None)
@given(seqs, st.floats(0.05, 0.9), st.floats(0.5, 6.0), st.integers(0, 2**31))
def test_bart_infill_hides_spans_behind_single_masks(ids, ratio, lam, seed):
    g = torch.Generator().manual_seed(seed)
    noisy, target = bart_noise(ids, mask_ratio=ratio, poisson_lambda=lam, generator=g)
    assert target == ids
    kept = [t for t in noisy if t != MASK]
    assert len(kept) == len(ids) - min(len(ids) - 1, max(1, round(len(ids) * ratio)))
    it = iter(ids)  # the kept words are the original's, in order
    assert all(any(t == u for u in it) for t in kept)
    assert MASK in noisy
    assert all(not (a == MASK and b == MASK) for a, b in itertools.pairwise(noisy))


@settings(max_examples=60, deadline=None)
@given(seqs, st.floats(0.05, 0.9), st.floats(1.0, 5.0), st.integers(0, 2**31))
def test_t5_noise_input_and_target_rebuild_the_sentence(ids, density, mean_span, seed):
    g = torch.Generator().manual_seed(seed)
    noisy, target = t5_noise(ids, noise_density=density, mean_span=mean_span, generator=g)
    used = [t for t in noisy if t in SENTINELS]
    assert used == SENTINELS[:len(used)] and [t for t in target if t in SENTINELS] == used
    spans, current = {}, None
    for t in target:
        if t in SENTINELS:
            current = spans.setdefault(t, [])
        else:
            current.append(t)
    rebuilt = [w for t in noisy for w in (spans[t] if t in SENTINELS else [t])]
    assert rebuilt == ids


def test_noises_reject_bad_inputs():
    with pytest.raises(ValueError, match="ids"):
        bart_noise([40])
    with pytest.raises(ValueError, match="mask_ratio"):
        bart_noise([40, 41], mask_ratio=1.0)
    with pytest.raises(ValueError, match="poisson_lambda"):
        bart_noise([40, 41], poisson_lambda=0)
    with pytest.raises(ValueError, match="mask_id"):
        bart_noise([40, MASK])
    with pytest.raises(ValueError, match="noise_density"):
        t5_noise([40, 41], noise_density=0.0)


def test_make_batch_shifts_targets_right():
    (src, mask, tgt_in), tgt_out = make_batch([([40, 41, 42], [50]), ([43], [51, 52])])
    assert src.tolist() == [[40, 41, 42, EOS], [43, EOS, PAD, PAD]]
    assert (mask == (src == PAD)).all()
    assert tgt_in.tolist() == [[PAD, 50, PAD], [PAD, 51, 52]]
    assert tgt_out.tolist() == [[50, EOS, -100], [51, 52, EOS]]
    with pytest.raises(ValueError, match="pairs"):
        make_batch([])


def test_task_rows_prefixes_and_originals():
    fix = t2t_multitask.task_rows("fix", "val")
    raw = load_task("acceptability", "val")
    assert all(r["input"].startswith("fix word order: ") for r in fix)
    for r, row in zip(fix[:200], raw[:200]):
        if row["swap_i"] == "-1":
            assert r["target"] == row["text"] and not r["swapped"]
        else:
            assert r["target"] != row["text"] and sorted(r["target"].split()) == sorted(row["text"].split())
    assert {r["target"] for r in fix} <= heldout_sentences()
    tr = t2t_multitask.task_rows("translate", "test")
    assert tr[0]["input"] == "translate English to Zetan: " + load_task("translation", "test")[0]["src"]
    with pytest.raises(ValueError, match="task"):
        t2t_multitask.task_rows("summarize", "val")
    with pytest.raises(ValueError, match="init"):
        t2t_multitask.name_of("bert")
    with pytest.raises(ValueError, match="objective"):
        t2t_pretrain.name_of("mlm")


def test_copy_baseline_and_single_task_batches():
    vocab = T2TVocab.build(["a sentence"], size=10)
    rows = t2t_multitask.task_rows("fix", "test")[:50]
    base = t2t_multitask.copy_baseline(vocab, n=50)
    assert base["exact_match"] >= 100 * sum(not r["swapped"] for r in rows) / 50  # originals are copied right
    assert t2t_multitask.batch_size(("fix",)) * 2 == t2t_multitask.batch_size(t2t_multitask.TASKS)
    with pytest.raises(ValueError, match="tasks"):
        t2t_multitask.MultitaskData(vocab, ("summarize",))


def test_pretraining_excludes_heldout_sentences():
    data = t2t_pretrain.PretrainData("span")
    seen = {s for split in data.texts.values() for s in split}
    assert len(seen) > 5000 and not heldout_sentences() & seen
    assert [data.vocab.encode(s) for s in data.texts["val"]] == data.splits["val"]


def test_shipped_multitask_scores_are_remeasured():
    model, vocab, record = load("t2t-multi-denoise")
    got = t2t_multitask.scores(model, vocab, n=record["eval"]["test_rows"], tasks=("fix",))
    assert got["exact_match"] == pytest.approx(record["test"]["exact_match"], abs=1e-9)
    assert len(vocab) == record["model_config"]["vocab_size"]


def test_build_writes_a_loadable_fp16_checkpoint(tmp_path):
    record = t2t_pretrain.build("denoise", zoo=tmp_path, progress=False, max_steps=2)
    model, _, loaded = load("t2t-denoise", tmp_path)
    assert loaded["steps"] == 2 and loaded["tokens_seen"] == record["tokens_seen"]
    assert (tmp_path / "t2t-denoise.safetensors").stat().st_size < 3 * 2**20
    assert all(torch.equal(p, p.half().float()) for p in model.parameters())
    assert t2t_pretrain.verify("denoise", tmp_path)["val_loss"] == pytest.approx(record["val_loss"], abs=1e-5)


def test_make_batch_ignores_listed_target_tokens():
    (_, _, tgt_in), tgt_out = make_batch([([40, 41], [SENTINELS[0], UNK, 50])], ignore=(UNK,))
    assert tgt_in.tolist() == [[PAD, SENTINELS[0], UNK, 50]]  # still read by the decoder ...
    assert tgt_out.tolist() == [[SENTINELS[0], -100, 50, EOS]]  # ... never predicted
    assert make_batch([([40], [UNK])])[1].tolist() == [[UNK, EOS]]  # default: nothing ignored


def test_span_pretraining_batches_follow_the_chapter_recipe():
    data = t2t_pretrain.PretrainData("span")
    assert data.settings == {"noise_density": 0.3, "mean_span": 3.0} and data.ignore == (UNK,)
    (src, _, tgt_in), tgt_out = data.get_batch("train", torch.Generator().manual_seed(0))
    assert not (tgt_out == UNK).any() and (tgt_in == UNK).any()
    assert t2t_pretrain.PretrainData("denoise").ignore == ()


class _Data:  # the two attributes noise_stats and prior_loss read
    def __init__(self, train, val):
        self.splits, self.vocab = {"train": train, "val": val}, list(range(100))


def test_noise_stats_and_prior_loss_by_hand():
    fifteen = [list(range(30, 45))]
    t5 = t2t_pretrain.noise_stats(_Data(fifteen, fifteen), noise_density=0.15, mean_span=3.0)
    # T5's defaults on 15 words: round(2.25) = 2 words hidden in round(2 / 3) = 1 span; target <0> w w </s>
    assert t5 == {"words": 15, "spans": 1, "hidden": 2, "target": 4, "unk_hidden": 0.0}
    with_unk = [[UNK, UNK, 30, 31]]
    assert t2t_pretrain.noise_stats(_Data(with_unk, with_unk), noise_density=0.99, mean_span=3.0)["unk_hidden"] == 2 / 3
    data = _Data([[30, 30, 31, 31, UNK, UNK, UNK, UNK]], [])
    assert t2t_pretrain.word_prior(data) == pytest.approx(math.log(2))  # 30/31, 1/2 each once <unk> is out
    p = torch.tensor([0.25, 0.25, 0.5])
    assert t2t_pretrain.word_prior(data, ignore_unk=False) == pytest.approx(-(p * p.log()).sum().item())


def test_shipped_span_model_records_its_recipe_and_learnt_only_the_prior():
    _, _, record = load("t2t-span")
    assert record["noise"] == t2t_pretrain.NOISE_SETTINGS["span"] and record["loss_ignores"] == ["<unk>"]
    model, _, _ = load("t2t-span")
    data = t2t_pretrain.PretrainData("span")
    got = t2t_pretrain.hidden_word_loss(model, data, batches=2)
    # what chapter 08 reports: on the hidden words, the loss of a model that ignores its input
    assert got["words"] > 400 and abs(got["loss"] - t2t_pretrain.word_prior(data)) < 0.15

