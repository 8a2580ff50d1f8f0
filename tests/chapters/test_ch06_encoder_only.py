"""The word-level BERT of chapter 06: the shipped checkpoint, the vocabulary, fine-tuning pieces."""

import math

import pytest
import torch

from roadmap_lib import zoo
from roadmap_lib.chapters.ch06_encoder_only import finetune as bf
from roadmap_lib.chapters.ch06_encoder_only import pretrain as be


def test_shipped_checkpoint_learnt_and_predicts_words():
    # its recorded loss is re-measured by tests/test_artifacts.py
    assert (be.zoo_dir() / f"{be.NAME}.safetensors").stat().st_size <= zoo.MAX_BYTES
    model, vocab, info = be.load()
    assert info["log"][-1]["step"] == info["steps"] == info["train_config"]["max_steps"]
    assert info["eval"]["loss"] < info["log"][0]["loss"] - 1.0  # it learned something
    words = [w for w, _ in be.top_predictions(model, vocab, "This is the [MASK] of the story.", k=5)]
    assert len(words) == 5 and all(w not in be.SPECIALS for w in words)


def test_build_is_seeded(tmp_path):
    a = be.build(tmp_path / "a", progress=False, max_steps=3)
    b = be.build(tmp_path / "b", progress=False, max_steps=3)
    import json
    assert json.loads(a.read_text())["eval"] == json.loads(b.read_text())["eval"]


def test_pretraining_excludes_heldout_sentences():
    held = be.heldout_sentences()
    assert len(held) == 1400
    assert not held & set(be.pretraining_sentences())


def test_vocab_encodes_one_token_per_word():
    vocab = be.WordVocab(["the", "hacker"])
    ids = vocab.encode("The hacker's [MASK] zzz.", context=8)
    assert ids.tolist() == [2, 5, 1, be.MASK, 1, 3, 0, 0]  # hacker's is not "hacker": [UNK]
    assert vocab.encode("(Hacker),")[1].item() == 6
    with pytest.raises(ValueError, match="at most 2 words"):
        vocab.encode("a b c", context=4)


def test_token_labels():
    assert bf.token_labels(4, 0, 3, context=8).tolist() == [-100, 1, 0, 0, 1, -100, -100, -100]
    assert bf.token_labels(2, -1, -1, context=4).tolist() == [-100, 0, 0, -100]
    assert bf.token_labels(3, 2, context=6).tolist() == [-100, 0, 0, 1, -100, -100]  # one intruder
    with pytest.raises(ValueError, match="n_words"):
        bf.token_labels(7, 0, 1, context=8)
    with pytest.raises(ValueError, match="changed"):
        bf.token_labels(3, 3, context=8)


def test_task_data_marks_the_changed_words():
    _, vocab, _ = be.load()
    for task in ("intruder", "acceptability"):
        data = bf.TaskData(vocab, task, "val", limit=200)
        flagged = (data.token_labels == 1).sum(1)
        # originals flag nothing; corrupted sentences flag one intruder or two swapped words
        assert torch.equal(flagged == 0, data.labels == 1)
        assert set(flagged[data.labels == 0].tolist()) == ({1} if task == "intruder" else {2})
    with pytest.raises(ValueError, match="task"):
        bf.TaskData(vocab, "sentiment", "val")


def test_finetune_learns_and_pretrained_encoder_is_copied():
    model, vocab, _ = be.load()
    data = bf.TaskData(vocab, "intruder", "train", limit=256)
    clf = bf.make_model("token", model.config, model.bert, seed=0)
    assert torch.equal(clf.bert.tok_emb.weight, model.bert.tok_emb.weight)
    losses = bf.finetune(clf, data, "token", steps=20)
    assert not torch.equal(clf.bert.tok_emb.weight, model.bert.tok_emb.weight)  # a copy was trained
    assert losses[-1] < losses[0]
    assert set(bf.scores(clf, data, "token")) == {"f1", "accuracy"}
    with pytest.raises(ValueError, match="kind"):
        bf.make_model("spans", model.config)


def test_study_results_are_complete_and_curves_read_back():
    from roadmap_lib.chapters.ch06_encoder_only import study as bs
    info = bs.results()
    assert info["sizes"] == list(bs.SIZES) and info["recipe"] == bs.RECIPE
    assert info["seeds"] == list(bs.SEEDS)
    assert len(info["runs"]) == len(bs.SEEDS) * len(bs.SIZES) * len(bs.KINDS) * len(bs.STARTS)
    sizes, f1 = bs.curve(info, "token", "pretrained", "f1")
    per_seed = bs.seed_values(info, "token", "pretrained", "f1")
    assert sizes == sorted(bs.SIZES) == list(per_seed) and all(0.0 <= v <= 1.0 for v in f1)
    assert all(len(v) == len(bs.SEEDS) for v in per_seed.values())
    assert f1 == pytest.approx([sum(v) / len(v) for v in per_seed.values()])
    with pytest.raises(ValueError, match="metric"):
        bs.curve(info, "token", "pretrained", "bleu")
    with pytest.raises(ValueError, match="start"):
        bs.run_one("token", "warm", 10)
    with pytest.raises(ValueError, match="jobs"):
        bs.build(jobs=0)


def test_word_surprise_is_the_masked_lm_loss_of_each_word():
    model, vocab, _ = be.load()
    text = "The hacker wrote a zzzqqq program."
    got = be.word_surprise(model, vocab, text)
    assert [w for w, _ in got] == text.split()
    assert math.isnan(got[4][1])  # the [UNK] word scores nan
    ids = vocab.encode(text)
    masked = ids.clone()
    masked[2] = be.MASK  # word 1, "hacker"
    with torch.no_grad():
        logits = model(masked[None], attention_mask=(masked != be.PAD)[None])[0, 2]
    assert got[1][1] == pytest.approx(-logits.log_softmax(-1)[ids[2]].item(), rel=1e-5)


def test_zero_shot_location_counts_only_corrupted_sentences():
    from roadmap_lib.chapters.ch06_encoder_only import study as bs
    model, vocab, _ = be.load()
    data = bf.TaskData(vocab, "intruder", "val", limit=40)
    surprise = bs.surprise_scores(model, data)
    share = bs.zero_shot_location(surprise, data)
    n_bad = int((data.labels == 0).sum())
    assert 0.0 <= share <= 1.0 and (share * n_bad) == pytest.approx(round(share * n_bad))
    only_bad = bs.surprise_scores(model, data, sentences=data.labels == 0)
    assert only_bad[data.labels == 1].isnan().all()
    assert bs.zero_shot_location(only_bad, data) == share
    keep = data.labels == 1
    data.text = [t for t, k in zip(data.text, keep) if k]
    data.ids, data.labels, data.token_labels = data.ids[keep], data.labels[keep], data.token_labels[keep]
    with pytest.raises(ValueError, match="corrupted"):
        bs.zero_shot_location(surprise[keep], data)
    with pytest.raises(ValueError, match="surprise: expected the shape"):
        bs.zero_shot_location(surprise, data)
    with pytest.raises(ValueError, match="sentences: expected a boolean mask"):
        bs.surprise_scores(model, data, sentences=torch.ones(3, dtype=torch.bool))


def test_surprise_scores_equal_word_surprise_sentence_by_sentence():
    from roadmap_lib.chapters.ch06_encoder_only import study as bs
    model, vocab, _ = be.load()
    data = bf.TaskData(vocab, "intruder", "test", limit=12)
    got = bs.surprise_scores(model, data, batch=7)  # batches that cut across sentences
    for row, text in enumerate(data.text):
        want = torch.tensor([v for _, v in be.word_surprise(model, vocab, text)])
        assert torch.allclose(got[row, 1:1 + len(want)], want, atol=1e-4, equal_nan=True)
        assert got[row, 1 + len(want):].isnan().all() and got[row, 0].isnan()


def test_flagging_rules_and_best_threshold_against_a_brute_force_search():
    from roadmap_lib.chapters.ch06_encoder_only import study as bs
    from roadmap_lib.metrics import token_f1
    nan = float("nan")
    surprise = torch.tensor([[nan, 1.0, 5.0, 2.0, nan], [nan, 3.0, 0.5, nan, nan], [nan, nan, nan, nan, nan],
                             [nan, 4.0, 4.0, 0.1, nan]])
    gold = torch.tensor([[-100, 0, 1, 0, -100], [-100, 0, 0, 1, -100], [-100, -100, -100, -100, -100],
                         [-100, 1, 0, 0, -100]])
    assert bs.flag_top(surprise).tolist() == [[0, 0, 1, 0, 0], [0, 1, 0, 0, 0], [0] * 5, [0, 1, 0, 0, 0]]
    assert bs.flag_above(surprise, 2.5).tolist() == [[0, 0, 1, 0, 0], [0, 1, 0, 0, 0], [0] * 5, [0, 1, 1, 0, 0]]
    threshold, f1 = bs.best_threshold(surprise, gold)
    candidates = [t / 4 for t in range(-4, 24)]  # a grid that includes every gap between values
    brute = max(token_f1(bs.flag_above(surprise, t), gold) for t in candidates)
    assert f1 == pytest.approx(brute) and token_f1(bs.flag_above(surprise, threshold), gold) == pytest.approx(f1)
    with pytest.raises(ValueError, match="gold: expected at least one changed"):
        bs.best_threshold(surprise, gold.clamp(max=0))
    with pytest.raises(ValueError, match="surprise: expected the shape"):
        bs.best_threshold(surprise[:2], gold)


def test_bootstrap_token_f1_brackets_the_f1_and_is_seeded():
    from roadmap_lib.chapters.ch06_encoder_only import study as bs
    from roadmap_lib.metrics import token_f1
    g = torch.Generator().manual_seed(0)
    gold = torch.randint(0, 2, (200, 6), generator=g)
    pred = torch.where(torch.rand(200, 6, generator=g) < 0.7, gold, 1 - gold)
    low, high = bs.bootstrap_token_f1(pred, gold, n=300)
    assert low < token_f1(pred, gold) < high < low + 0.2
    assert (low, high) == bs.bootstrap_token_f1(pred, gold, n=300)
    with pytest.raises(ValueError, match="pred: expected the shape"):
        bs.bootstrap_token_f1(pred[:3], gold)


def test_tagger_location_of_a_perfect_and_a_blind_tagger():
    from roadmap_lib.chapters.ch06_encoder_only import study as bs
    _, vocab, _ = be.load()
    data = bf.TaskData(vocab, "intruder", "val", limit=60)

    class Oracle(torch.nn.Module):  # tagger_location passes the corrupted rows: point at their intruders
        def forward(self, ids, attention_mask=None):
            gold = data.token_labels[data.labels == 0]
            return torch.stack([torch.zeros_like(gold, dtype=torch.float), (gold == 1).float()], -1)

    assert bs.tagger_location(Oracle(), data) == 1.0
    blind = bf.make_model("token", be.load()[0].config, seed=0)
    assert 0.0 <= bs.tagger_location(blind, data) < 0.5


def test_encoder_mlm_loss_reads_the_recorded_evaluation_and_sees_a_moved_encoder():
    from roadmap_lib.chapters.ch06_encoder_only.study import encoder_mlm_loss

    model, vocab, record = be.load()
    own = encoder_mlm_loss(model, vocab, record)
    assert abs(own - record["eval"]["loss"]) < 1e-4
    moved = {k: v + 0.05 * torch.randn_like(v) for k, v in model.bert.state_dict().items()}
    assert encoder_mlm_loss(model, vocab, record, moved) > own + 0.05
    assert torch.equal(next(model.parameters()), next(be.load()[0].parameters()))  # the model is not touched


def test_fast_path_gives_the_same_scores_with_fused_kernels():
    """fast_path switches attention to "sdpa" and the norms and GELU to single kernels: the masked-LM
    logits (with padding) and the surprise scores agree with the written-out path to float rounding."""
    import copy

    from roadmap_lib import layers
    from roadmap_lib.chapters.ch06_encoder_only import study as bs
    from roadmap_lib.models.bert import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    slow = BertForMaskedLM(BertConfig(vocab_size=50, context_length=12, d_model=32, n_layers=2, n_heads=4)).eval()
    fast = bs.fast_path(copy.deepcopy(slow))
    assert all(m.config.backend == "sdpa" for m in fast.modules() if type(m).__name__ == "MultiHeadAttention")
    assert all(m.fused for m in fast.modules() if isinstance(m, layers.LayerNorm))
    assert all(m.act is layers.FUSED_ACTIVATIONS["gelu"] for m in fast.modules() if isinstance(m, layers.FeedForward))
    ids = torch.randint(5, 50, (3, 12))
    ids[1, 7:] = be.PAD
    with torch.no_grad():
        want, got = slow(ids, attention_mask=ids != be.PAD), fast(ids, attention_mask=ids != be.PAD)
    assert torch.allclose(got, want, atol=1e-5)

    model, vocab, _ = be.load()
    data = bf.TaskData(vocab, "intruder", "test", limit=6)
    want = bs.surprise_scores(model, data)
    got = bs.surprise_scores(bs.fast_path(copy.deepcopy(model)), data)
    assert torch.allclose(got, want, atol=1e-4, equal_nan=True)


def test_tagger_round_trips_through_half_precision_and_saving_leaves_the_model_alone(tmp_path):
    from roadmap_lib.chapters.ch06_encoder_only import distil
    from roadmap_lib.models.bert import BertConfig

    config = BertConfig(**{**be.load()[0].config.to_dict(), "vocab_size": 40, "n_layers": 1})
    model = bf.make_model("token", config, None, seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    distil.save_teacher(model, tmp_path / "t.safetensors")
    assert all(v.dtype == torch.float32 and torch.equal(v, before[k]) for k, v in model.state_dict().items())
    back = distil.load_teacher(tmp_path / "t.safetensors")
    assert not back.training and back.config == model.config
    for k, v in back.state_dict().items():  # fp16 rounding only: relative error below 2**-11
        assert v.dtype == torch.float32 and torch.allclose(v, before[k], rtol=2**-11, atol=1e-7), k


def test_stop_at_replays_the_start_of_the_same_run():
    model, vocab, _ = be.load()
    data = bf.TaskData(vocab, "intruder", "train", limit=128)
    full = bf.finetune(bf.make_model("token", model.config, model.bert, seed=0), data, "token", steps=12, seed=4)
    start = bf.finetune(bf.make_model("token", model.config, model.bert, seed=0), data, "token", steps=12, seed=4,
                        stop_at=5)
    assert start == full[:5]  # the same schedule: a 5-step run would warm up and decay differently
    short = bf.finetune(bf.make_model("token", model.config, model.bert, seed=0), data, "token", steps=5, seed=4)
    assert short != full[:5]


def test_distil_record_reads_back_per_seed():
    from roadmap_lib.chapters.ch06_encoder_only import distil

    record = distil.results()
    f1 = distil.student_f1(record)
    assert set(f1) == set(distil.STUDENTS) and all(len(v) == len(distil.SEEDS) for v in f1.values())
    first = next(r for r in record["students"]["runs"] if (r["student"], r["seed"]) == ("student distilled", 0))
    assert f1["student distilled"][0] == first["f1"]
    assert len(record["teacher"]["first_losses"]) == distil.REPLAY_STEPS
