"""Chapter 24's exercise checks: the right answers pass, and each declared mistake, written the way
a student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from roadmap_lib.chapters.ch24_multimodal import exercises as ex
from roadmap_lib.exercises import ExerciseError


def patchify(x, p):
    b, c = x.shape[:2]
    return x.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)


def clip_loss(logits):
    t = torch.arange(len(logits))
    return 0.5 * (F.cross_entropy(logits, t) + F.cross_entropy(logits.t(), t))


STUDENT_PATCHIFY = {
    "the channel comes last": lambda x, p: x.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 4, 5, 1)
    .reshape(x.shape[0], -1, x.shape[1] * p * p),
    "column by column": lambda x, p: x.unfold(2, p, p).unfold(3, p, p).permute(0, 3, 2, 1, 4, 5)
    .reshape(x.shape[0], -1, x.shape[1] * p * p),
    "a plain reshape": lambda x, p: x.reshape(x.shape[0], -1, x.shape[1] * p * p),
}

STUDENT_LOSS = {
    "only the image -> caption direction": lambda lg: F.cross_entropy(lg, torch.arange(len(lg))),
    "only the caption -> image direction": lambda lg: F.cross_entropy(lg.t(), torch.arange(len(lg))),
    "added, not averaged": lambda lg: F.cross_entropy(lg, torch.arange(len(lg)))
    + F.cross_entropy(lg.t(), torch.arange(len(lg))),
    "over the whole matrix at once": lambda lg: -(lg.diagonal() - torch.logsumexp(lg.reshape(-1), 0)).mean(),
}


STUDENT_GUIDANCE = {
    "Ho & Salimans' own convention": lambda c, u, w: c + w * (c - u),
    "the wrong way round": lambda c, u, w: u - w * (c - u),
    "only eps_cond is scaled": lambda c, u, w: c * w,
}


def test_the_guided_eps_passes_and_each_mistake_is_named(capsys):
    ex.check_guided_eps(lambda c, u, w: w * c + (1 - w) * u)
    assert "Correct" in capsys.readouterr().out
    for words, fn in STUDENT_GUIDANCE.items():
        with pytest.raises(ExerciseError, match="likely mistake: .*" + words):
            ex.check_guided_eps(fn)
    assert {d for d in ex.GUIDANCE_MISTAKES for w in STUDENT_GUIDANCE if w in d} == set(ex.GUIDANCE_MISTAKES)


def test_the_guidance_prediction_is_checked():
    measured = {"w0": 0.1, "w3_beats_w1": True}
    ex.check_guidance_prediction({"w0": 0.12, "w3_beats_w1": True}, measured)
    with pytest.raises(ExerciseError, match="accuracy at guidance 0 is 0.5"):
        ex.check_guidance_prediction({"w0": 0.5, "w3_beats_w1": True}, measured)
    with pytest.raises(ExerciseError, match="the opposite"):
        ex.check_guidance_prediction({"w0": 0.1, "w3_beats_w1": False}, measured)
    with pytest.raises(ValueError, match="predicted: expected a dict"):
        ex.check_guidance_prediction({"w0": 0.1}, measured)


def test_right_answers_pass(capsys):
    ex.check_patchify(patchify)
    ex.check_clip_loss(clip_loss)
    ex.check_vit_b16({"tokens": 197, "embedding_params": 16 * 16 * 3 * 768 + 768 + 768 + 197 * 768})
    assert capsys.readouterr().out.count("Correct") >= 4


@pytest.mark.parametrize("words", list(STUDENT_PATCHIFY))
def test_each_patchify_mistake_is_named(words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + words):
        ex.check_patchify(STUDENT_PATCHIFY[words])


@pytest.mark.parametrize("words", list(STUDENT_LOSS))
def test_each_loss_mistake_is_named(words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + words.replace("(", r"\(")):
        ex.check_clip_loss(STUDENT_LOSS[words])


def test_every_declared_mistake_has_a_student_version():
    assert {d for d in ex.PATCHIFY_MISTAKES for w in STUDENT_PATCHIFY if w in d} == set(ex.PATCHIFY_MISTAKES)
    assert {d for d in ex.CLIP_LOSS_MISTAKES for w in STUDENT_LOSS if w in d} == set(ex.CLIP_LOSS_MISTAKES)


def test_a_wrong_count_is_reported():
    """Forgetting the [CLS] token: 196 tokens and one position vector too few."""
    with pytest.raises(ExerciseError, match="tokens is 196"):
        ex.check_vit_b16({"tokens": 196, "embedding_params": 0})
    with pytest.raises(ExerciseError, match="embedding_params"):
        ex.check_vit_b16({"tokens": 197, "embedding_params": 16 * 16 * 3 * 768 + 768 + 196 * 768})


def test_calling_the_library_is_refused():
    from roadmap_lib.models.clip import clip_loss as library_loss
    from roadmap_lib.vision import patchify as library_patchify

    with pytest.raises(ExerciseError, match="library's own"):
        ex.check_patchify(lambda x, p: library_patchify(x, p))
    with pytest.raises(ExerciseError, match="library's own"):
        ex.check_clip_loss(lambda lg: library_loss(lg))
