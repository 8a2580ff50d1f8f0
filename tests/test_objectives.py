"""roadmap_lib.objectives: the losses and corruptions of the pretraining recipes."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.models import BertConfig, BertForMaskedLM
from roadmap_lib.objectives import (
    bart_infill,
    distillation_loss,
    lm_loss,
    mlm_loss,
    mlm_mask,
    seq2seq_loss,
    span_corrupt,
)


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


def test_distillation_loss():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g)
    y = torch.tensor([0, 1, 1, -100, 0])
    keep = y != -100
    ce = torch.nn.functional.cross_entropy(s[keep], y[keep])
    assert distillation_loss(s, t, y, alpha=0.0).item() == pytest.approx(ce.item())
    assert distillation_loss(s, s, y, alpha=1.0).item() == pytest.approx(0.0, abs=1e-6)
    pt = (t[keep] / 2).softmax(-1)
    kl = (pt * (pt.log() - (s[keep] / 2).log_softmax(-1))).sum(-1).mean() * 4
    assert distillation_loss(s, t, y, T=2.0, alpha=1.0).item() == pytest.approx(kl.item(), rel=1e-5)
    with pytest.raises(ValueError, match="teacher_logits"):
        distillation_loss(s, t[:3], y)




def test_lm_loss_is_next_token_cross_entropy_and_skips_ignored():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(11, 11)
    x = torch.randint(0, 11, (2, 5))
    y = torch.randint(0, 11, (2, 5))
    y[0, :2] = -100
    keep = y != -100
    want = F.cross_entropy(emb(x)[keep], y[keep])
    torch.testing.assert_close(lm_loss(emb, x, y), want)


def test_mlm_loss_scores_masked_rows_only_like_the_full_head():
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=30, context_length=8, d_model=16, n_layers=1,
                                       n_heads=2, d_ff=32, dropout=0.0)).eval()
    ids = torch.randint(5, 30, (3, 8))
    ids[2, 6:] = 0  # padding
    labels = torch.full_like(ids, -100)
    labels[0, 1], labels[1, 3], labels[2, 2] = 7, 9, 11
    full = model(ids, attention_mask=ids != 0)  # every position through the head
    want = F.cross_entropy(full[labels != -100], labels[labels != -100])
    torch.testing.assert_close(mlm_loss(model, ids, labels, pad_id=0), want, atol=1e-6, rtol=0)


def test_seq2seq_loss_calls_the_model_with_source_mask():
    class Echo(torch.nn.Module):
        def forward(self, src, tgt_in, mask):
            assert mask.dtype == torch.bool and mask.shape == src.shape
            return torch.nn.functional.one_hot(tgt_in, 6).float() * 10

    src = torch.tensor([[1, 2, 0]])
    tgt_in = torch.tensor([[3, 4]])
    targets = torch.tensor([[3, -100]])
    loss = seq2seq_loss(Echo(), (src, src == 0, tgt_in), targets)
    want = F.cross_entropy(torch.nn.functional.one_hot(torch.tensor([3]), 6).float() * 10,
                           torch.tensor([3]))
    torch.testing.assert_close(loss, want)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(10, 50), min_size=2, max_size=30), st.floats(0.05, 0.9),
       st.integers(0, 2**31))
def test_bart_infill_rebuilds_the_kept_words_in_order(ids, ratio, seed):
    noisy, target = bart_infill(ids, mask_id=3, mask_ratio=ratio,
                                generator=torch.Generator().manual_seed(seed))
    assert target == ids and 3 in noisy
    kept = [t for t in noisy if t != 3]
    it = iter(ids)
    assert all(any(k == w for w in it) for k in kept)  # the kept words are a subsequence of ids
    assert not any(a == b == 3 for a, b in zip(noisy, noisy[1:]))  # runs merge into one mask
    with pytest.raises(ValueError, match="mask_id"):
        bart_infill([3, 10], mask_id=3)


def test_distillation_at_temperature_one_and_alpha_one_is_kl():
    s, t = torch.randn(4, 3), torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, -100])
    kl = F.kl_div(F.log_softmax(s[:3], -1), F.softmax(t[:3], -1), reduction="batchmean")
    assert distillation_loss(s, t, y, T=1.0, alpha=1.0).item() == pytest.approx(kl.item(), rel=1e-5)
    assert math.isfinite(distillation_loss(s, t, y).item())
