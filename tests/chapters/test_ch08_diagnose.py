"""Chapter 08's span-corruption diagnosis: the mask read-back, the count-based baselines by hand,
transformers' T5 wrapper against our T5 on the same weights, and the overfitting run."""

from __future__ import annotations

import math

import pytest
import torch

from roadmap_lib.chapters.ch08_text_to_text import diagnose
from roadmap_lib.chapters.ch08_text_to_text.common import PAD, SENTINELS, make_batch, new_model, t5_noise

S0, S1 = SENTINELS[:2]


def test_noise_mask_is_read_off_input_and_target():
    ids = [30, 31, 32, 33, 34, 35]
    assert diagnose.noise_mask_of(ids, [30, S0, 33, S1], [S0, 31, 32, S1, 34, 35]) == [
        False, True, True, False, True, True]
    assert diagnose.noise_mask_of(ids[:3], [S0, 32], [S0, 30, 31]) == [True, True, False]
    g = torch.Generator().manual_seed(0)
    for n in (4, 9, 25):
        ids = list(range(40, 40 + n))
        noisy, target = t5_noise(ids, noise_density=0.3, generator=g)
        mask = diagnose.noise_mask_of(ids, noisy, target)
        assert [w for w, m in zip(ids, mask) if m] == [t for t in target if t not in SENTINELS]
    with pytest.raises(ValueError, match="noisy, target: they rebuild 3 words, expected 4"):
        diagnose.noise_mask_of([30, 31, 32, 33], [30, S0], [S0, 31, 32])


class _Data:  # what context_baselines reads: splits, vocab, noise (here: always hide the middle word)
    vocab = list(range(40))
    splits = {"train": [[30, 31, 32]] * 10 + [[33, 31, 34]] * 10, "val": [[30, 31, 32]]}

    @staticmethod
    def noise(ids, generator=None, **settings):
        return [ids[0], S0, ids[2]], [S0, ids[1]]


def test_context_baselines_by_hand():
    got = diagnose.context_baselines(_Data(), weight=0.5, copies=3)
    p31 = (20 + 0.01) / (60 + 0.01 * 40)  # 31 is a third of the 60 training words
    assert got["words"] == 3
    assert got["unigram"] == pytest.approx(-math.log(p31))
    # 30 is always followed by 31, 32 always preceded by it: the bigram's half is certain
    assert got["left_bigram"] == pytest.approx(-math.log(0.5 + 0.5 * p31))
    assert got["right_bigram"] == pytest.approx(-math.log(0.5 + 0.5 * p31))
    assert got["by_rank"][0] == {"ranks": [0, 10], "share": 1.0, "unigram": pytest.approx(-math.log(p31))}
    assert [b["share"] for b in got["by_rank"][1:]] == [0, 0, 0]
    with pytest.raises(ValueError, match="weight: expected a weight in \\[0, 1\\], got 1.5"):
        diagnose.context_baselines(_Data(), weight=1.5)


@pytest.mark.slow
def test_transformers_wrapper_matches_our_t5_on_the_same_weights():
    from roadmap_lib.models.hf_seq2seq import t5_from_hf

    wrapped = diagnose.HFT5(60).eval()
    ours = t5_from_hf(wrapped.hf).eval()
    assert ours.config.num_buckets == 16 and ours.config.d_model == 64 and ours.config.tie_word_embeddings
    g = torch.Generator().manual_seed(0)
    pairs = [t5_noise(list(range(25, 25 + n)), noise_density=0.3, generator=g) for n in (5, 11, 17)]
    (src, mask, tgt_in), _ = make_batch(pairs)
    assert mask.any()  # padding in the source
    with torch.no_grad():
        assert torch.allclose(wrapped(src, tgt_in, mask), ours(src, tgt_in, mask), atol=1e-4, rtol=1e-4)


def test_same_budget_rejects_unknown_kinds_and_results_names_its_command(tmp_path):
    with pytest.raises(ValueError, match="kind: expected 'ours' or 'transformers', got 'bart'"):
        diagnose.same_budget("bart", None)
    with pytest.raises(FileNotFoundError, match="python -m roadmap_lib build 08-span-diagnosis"):
        diagnose.results(tmp_path / "missing.json")


@pytest.mark.slow
def test_overfitting_one_batch_drives_the_loss_down():
    from roadmap_lib.chapters.ch08_text_to_text.pretrain import PretrainData

    data = PretrainData("span")
    log = diagnose.overfit_one_batch(data, steps=20, log_every=10)
    assert [r["step"] for r in log] == [0, 10, 20]
    assert log[0]["loss"] > 8 and log[-1]["loss"] < log[0]["loss"] - 2  # 8.8 -> about 5.5 in 20 steps
    assert new_model(len(data.vocab)).config.pad_token_id == PAD


def test_the_recorded_diagnosis():
    """What chapter 08 reads: our T5 overfits one batch, and at the same budget both our T5 and
    transformers' stay at the word prior, above what a gap's left neighbour alone tells."""
    info = diagnose.results()
    assert info["overfit"]["log"][-1]["loss"] < 0.2
    for kind in ("ours", "transformers"):
        assert abs(info["same_budget"][kind]["hidden"]["loss"] - info["prior"]) < 0.2
        assert info["same_budget"][kind]["hidden"]["loss"] > info["baselines"]["left_bigram"] + 0.1
