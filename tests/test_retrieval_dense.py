"""The hashed bag encoder and InfoNCE."""

import math
import random

import pytest
import torch
import torch.nn.functional as F

from roadmap_lib.retrieval import HashedBagEncoder, featurize, info_nce_loss
from roadmap_lib.retrieval.dense import train_bi_encoder


def test_featurize_is_stable_and_counts_trigrams():
    ids = featurize("Cat", num_buckets=1000)
    assert len(ids) == 1 + 3  # the word, then #ca cat at#
    assert ids == featurize("cat", num_buckets=1000)
    assert featurize("", 1000) == [0]
    with pytest.raises(ValueError, match="num_buckets"):
        featurize("x", 1)
    with pytest.raises(TypeError, match="text"):
        featurize(3)


def test_encoder_gives_unit_vectors_equal_to_a_manual_mean():
    torch.manual_seed(0)
    enc = HashedBagEncoder(50, 8)
    feats = [[1, 2, 2], [7]]
    out = enc(feats)
    assert out.shape == (2, 8)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))
    manual = F.normalize(enc.proj(enc.bag.weight[[1, 2, 2]].mean(0)), dim=-1)
    torch.testing.assert_close(out[0], manual)
    assert enc.encode(feats).dtype.name == "float32"
    with pytest.raises(ValueError, match="bucket ids"):
        enc([[50]])
    with pytest.raises(ValueError, match="features"):
        enc([[]])


def test_info_nce_equals_the_hand_formula():
    g = torch.Generator().manual_seed(0)
    q, p = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    logits = q @ p.T / 0.1
    want = -torch.stack([logits[i, i] - torch.logsumexp(logits[i], 0) for i in range(4)]).mean()
    torch.testing.assert_close(info_nce_loss(q, p, 0.1), want)
    # perfectly separated unit pairs: the loss tends to 0 as the temperature falls
    eye = torch.eye(4)
    assert info_nce_loss(eye, eye, 0.01).item() < 1e-6
    assert info_nce_loss(eye, eye, 1e6).item() == pytest.approx(math.log(4), rel=1e-5)
    with pytest.raises(ValueError, match="q, p"):
        info_nce_loss(q, p[:3])
    with pytest.raises(ValueError, match="temperature"):
        info_nce_loss(q, p, 0.0)


def test_training_learns_to_match_queries_to_passages():
    words = [f"word{i}" for i in range(200)]
    docs = [" ".join(random.Random(i).sample(words, 20)) for i in range(32)]
    feats = [featurize(d, 512) for d in docs]

    def make_batch(rng, b):
        picked = rng.sample(range(len(docs)), b)
        return [featurize(" ".join(rng.sample(docs[i].split(), 5)), 512) for i in picked], [feats[i] for i in picked]

    enc = HashedBagEncoder(512, 16)
    losses = train_bi_encoder(enc, make_batch, steps=40, batch_size=16, lr=1e-2, seed=0)
    assert sum(losses[-10:]) / 10 < 0.5 * losses[0]
    q = enc.encode([featurize(" ".join(d.split()[:5]), 512) for d in docs])
    hits = ((q @ enc.encode(feats).T).argmax(1) == torch.arange(32).numpy()).mean()
    assert hits > 0.5  # chance is 1/32
