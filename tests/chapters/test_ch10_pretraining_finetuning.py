"""Chapter 10's training-setup pieces and fine-tuning levels."""


import matplotlib
import pytest
import torch

from roadmap_lib.chapters.ch10_pretraining_finetuning import finetune, plots
from roadmap_lib.chapters.ch10_pretraining_finetuning import setup as S
from roadmap_lib.packing import pack_documents, pad_documents

matplotlib.use("Agg")


def _gpt(seed=0):
    return S.small_gpt(20, seed, context_length=32, d_model=32).eval()


def _docs(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, 20, (int(L),), generator=g).tolist() for L in torch.randint(2, 30, (n,), generator=g)]


def test_token_normalised_accumulation_equals_the_full_batch_and_the_mean_shortcut_does_not():
    model, docs = _gpt(), _docs()
    full = S.full_batch_gradients(model, docs, 32)
    assert S.max_relative_difference(S.accumulated_gradients(model, docs, 4, 32, "tokens"), full) < 1e-6
    assert S.max_relative_difference(S.accumulated_gradients(model, docs, 4, 32, "mean"), full) > 1e-2
    # with equal token counts the shortcut is exact too
    same = [d[:10] + [1] * (10 - len(d[:10])) for d in docs]
    assert S.max_relative_difference(S.accumulated_gradients(model, same, 4, 32, "mean"),
                                     S.full_batch_gradients(model, same, 32)) < 1e-6


def test_accumulation_bad_arguments():
    with pytest.raises(ValueError, match="k: expected a divisor of the 8 documents"):
        S.split_micro_batches(_docs(), 3)
    with pytest.raises(ValueError, match="normalize: expected 'tokens' or 'mean'"):
        S.accumulated_gradients(_gpt(), _docs(), 2, 32, "sum")


def test_checkpointing_same_gradients_less_memory():
    model = _gpt().train()
    ids = torch.randint(0, 20, (4, 32))
    peak, alive, g = S.training_step_memory(model, ids, ids, use_checkpoint=False)
    peak_c, alive_c, g_c = S.training_step_memory(model, ids, ids, use_checkpoint=True)
    assert all(torch.equal(a, b) for a, b in zip(g, g_c))
    assert alive_c < alive and peak_c < peak
    with torch.no_grad():
        torch.testing.assert_close(S.gpt_logits(model.eval(), ids), model(ids), atol=1e-6, rtol=0)


def test_optimizer_state_bytes_counts_each_optimizer():
    model = _gpt()
    ids = torch.randint(0, 20, (2, 32))
    out = S.optimizer_state_bytes(model, (ids, ids))
    n = sum(p.numel() for p in model.parameters())
    assert out["AdamW (fp32 moments)"] == 8 * n + 4 * len(list(model.parameters()))
    assert out["Adafactor (paper default)"] < out["Adafactor + first moment"] < out["AdamW (fp32 moments)"]


def test_autocast_runs_linear_layers_in_bf16_and_keeps_norms_in_fp32():
    dtypes = S.autocast_dtypes(_gpt(), torch.randint(0, 20, (2, 16)))
    assert dtypes["Linear"] == "torch.bfloat16" and dtypes["LayerNorm"] == "torch.float32"
    assert dtypes["cross_entropy"] == "torch.float32" and dtypes["parameters"] == "torch.float32"
    with pytest.raises(ValueError, match="precision: expected 'fp32' or 'bf16'"):
        S.train_curve("fp16")


def test_jargon_documents_are_short_and_seeded():
    a, b = S.jargon_documents(30, max_chars=50, seed=3), S.jargon_documents(30, max_chars=50, seed=3)
    assert a == b and all(len(s) <= 50 for s in a) and len(set(a)) == 30
    with pytest.raises(ValueError, match="n: expected at most"):
        S.jargon_documents(10**6)


@pytest.fixture(scope="module")
def encoder():
    try:
        return finetune.load_encoder()
    except FileNotFoundError:
        pytest.skip("bert-word-jargon is not built")


def test_levels_freeze_what_they_say(encoder):
    enc, _, _ = encoder
    counts = {}
    for level in finetune.LEVELS:
        model = finetune.make_tagger(enc, level, seed=0)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        counts[level] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if level == "head only":
            assert trainable == {"classifier.weight", "classifier.bias"}
        if level == "top block + head":
            assert all(n.startswith(("classifier.", "bert.blocks.1.")) for n in trainable)
        # the encoder's weights are the pretrained ones
        assert torch.equal(model.bert.tok_emb.weight, enc.bert.tok_emb.weight)
    assert counts["head only"] == 2 * 128 + 2 < counts["top block + head"] < counts["full"]
    with pytest.raises(ValueError, match="level: expected one of"):
        finetune.make_tagger(enc, "half", 0)


def test_encode_task_marks_the_intruder(encoder):
    _, vocab, _ = encoder
    ids, labels = finetune.encode_task(vocab, "val", limit=50)
    assert ids.shape == labels.shape == (50, 32)
    assert (ids[:, 0] == finetune.CLS).all()
    assert ((labels == 1).sum(1) <= 1).all() and (labels == 1).any()
    assert ((labels != -100) == ((ids != finetune.PAD) & (ids != finetune.CLS) & (ids != finetune.SEP))).all()


@pytest.mark.slow
def test_run_level_trains_the_head(encoder):
    """A 30-step run (a few seconds): the loss falls and only the head moved."""
    enc, vocab, _ = encoder
    train = finetune.encode_task(vocab, "train", 500)
    val = finetune.encode_task(vocab, "val", 100)
    row = finetune.run_level(enc, train, val, "head only", seed=0, steps=30)
    assert row["trainable"] == 258 and 0.0 <= row["f1"] <= 1.0 and row["seconds"] > 0
    summary = finetune.summarise([row, dict(row, seed=1, f1=row["f1"] + 0.1)])
    assert summary["head only"]["f1_max"] - summary["head only"]["f1_min"] == pytest.approx(0.1)


def test_plots_draw():
    docs = _docs(12)
    plots.plot_layouts({"padded": pad_documents(docs, seq_len=32), "packed": pack_documents(docs, 32)})
    plots.plot_document_mask(pack_documents(docs, 32))
    plots.plot_accumulation_errors({"a": {1: 1e-8, 2: 0.1}})
    plots.plot_bytes({"x": 10.0, "y": 20.0}, "t")
    plots.plot_curves({"fp32": {"0": [3.0] * 30}, "bf16": {"0": [3.1] * 30}})
    rows = [{"level": lv, "seed": s, "f1": 0.1 * s, "trainable": 10, "seconds": 1.0}
            for lv in finetune.LEVELS for s in range(3)]
    axes = plots.plot_finetune(rows)
    assert len(axes[0].patches) == 3
    matplotlib.pyplot.close("all")
