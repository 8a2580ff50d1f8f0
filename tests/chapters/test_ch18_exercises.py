"""Chapter 18's exercise checks: the right answers pass, and each declared mistake, written the way a
student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import re

import pytest
import torch

from roadmap_lib.chapters.ch18_decoding_generation import exercises as ex
from roadmap_lib.exercises import ExerciseError
from roadmap_lib.zoo import load_char_gpt


def _named(words: str) -> str:
    return "likely mistake: .*" + re.escape(words)


# ---- 18.1: the prediction ---------------------------------------------------------------------------

MEASURED = {0.5: 0.93, 1.5: 1.0}


def test_a_good_prediction_passes(capsys):
    ex.check_distinct_prediction({0.5: 0.9, 1.5: 0.98}, MEASURED)
    assert capsys.readouterr().out.count("Correct") == 3


@pytest.mark.parametrize("predicted, words", [
    ({0.5: 93, 1.5: 100}, "not a percentage"),
    ({0.5: 1.0, 1.5: 0.9}, "the order is reversed"),
    ({0.5: 0.95, 1.5: 0.95}, "both predictions are equal"),
])
def test_each_prediction_mistake_is_named(predicted, words):
    with pytest.raises(ExerciseError, match=_named(words)):
        ex.check_distinct_prediction(predicted, MEASURED)
    assert any(words in d for d in ex.PREDICTION_MISTAKES)


def test_a_prediction_too_far_off_fails_without_a_named_mistake():
    with pytest.raises(ExerciseError, match=r"distinct-2 at T = 0.5 is 0.6, expected 0.93") as err:
        ex.check_distinct_prediction({0.5: 0.6, 1.5: 0.99}, MEASURED)
    assert "likely mistake" not in str(err.value)
    with pytest.raises(ExerciseError, match=r"should return \{0.5: ..., 1.5: ...\}"):
        ex.check_distinct_prediction([0.9, 1.0], MEASURED)


# ---- 18.2: min-p ------------------------------------------------------------------------------------


def right_min_p(logits, min_p):
    p = torch.softmax(logits, dim=-1)
    cut = min_p * p.amax(dim=-1, keepdim=True)
    return torch.where(p < cut, torch.full_like(logits, float("-inf")), logits)


STUDENT_MIN_P = {
    "that is epsilon sampling": lambda x, m: torch.where(x.softmax(-1) < m, float("-inf"), x),
    "taken on the logits": lambda x, m: torch.where(x < m * x.max(dim=1, keepdim=True)[0], float("-inf"), x),
    "over the whole batch, not per row":
        lambda x, m: torch.where(x.softmax(-1) < m * x.softmax(-1).max(), float("-inf"), x),
    "the mask is inverted":
        lambda x, m: torch.where(x.softmax(-1) >= m * x.softmax(-1).amax(-1, keepdim=True), float("-inf"), x),
    "set to 0, not -inf": lambda x, m: torch.where(x.softmax(-1) < m * x.softmax(-1).amax(-1, keepdim=True), 0.0, x),
}


def test_min_p_right_answer_passes(capsys):
    ex.check_min_p(right_min_p)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("words", list(STUDENT_MIN_P))
def test_each_min_p_mistake_is_named(words):
    with pytest.raises(ExerciseError, match=_named(words)):
        ex.check_min_p(STUDENT_MIN_P[words])


def test_every_declared_min_p_mistake_has_a_student_version():
    assert {d for d in ex.MIN_P_MISTAKES for w in STUDENT_MIN_P if w in d} == set(ex.MIN_P_MISTAKES)


def test_min_p_in_place_and_library_calls_are_caught():
    def in_place(x, m):
        p = x.softmax(-1)
        x[p < m * p.amax(-1, keepdim=True)] = float("-inf")
        return x

    with pytest.raises(ExerciseError, match="in place"):
        ex.check_min_p(in_place)
    from roadmap_lib.logits_processors import MinP

    with pytest.raises(ExerciseError, match="calls the library's own"):
        ex.check_min_p(lambda x, m: MinP(m)(None, x))


# ---- 18.3: the time grammar ------------------------------------------------------------------------

STUDENT_TIMES = {
    "lets 24 to 29 through": r"[012]\d:[0-5]\d\.",
    "let 60 to 99 through": r"([01]\d|2[0-3]):\d{2}\.",
    "the leading zero is optional": r"(\d|[01]\d|2[0-3]):[0-5]\d\.",
    "the full stop is not escaped": r"([01][0-9]|2[0-3]):[0-5][0-9].",
    "the final full stop is missing": r"([01][0-9]|2[0-3]):[0-5][0-9]",
}


@pytest.mark.parametrize("words", list(STUDENT_TIMES))
def test_each_time_mistake_is_named(words):
    with pytest.raises(ExerciseError, match=_named(words)):
        ex.check_time_regex(STUDENT_TIMES[words], model=None, vocab=None)
    assert any(words in d for d in ex.TIME_MISTAKES)


def test_right_time_pattern_passes_and_the_model_writes_valid_times(capsys):
    model, vocab, _ = load_char_gpt()
    times = ex.check_time_regex(r"(0\d|1\d|2[0-3]):[0-5]\d\.", model, vocab, n=8)
    assert len(times) == 8 and capsys.readouterr().out.count("Correct") == 2
    with pytest.raises(ExerciseError, match="disagrees with the rule") as err:
        ex.check_time_regex(r"\d\d:\d\d\.", model, vocab)  # two mistakes at once: none is named
    assert "likely mistake" not in str(err.value)
    with pytest.raises(ExerciseError, match="should be a string"):
        ex.check_time_regex(None, model, vocab)


# ---- 18.4: the repetition penalty ------------------------------------------------------------------


def right_penalty(ids, logits, theta):
    out = logits.clone()
    for b in range(ids.shape[0]):
        for t in set(ids[b].tolist()):
            out[b, t] = out[b, t] / theta if out[b, t] > 0 else out[b, t] * theta
    return out


def _seen(ids, logits):
    return torch.zeros_like(logits).scatter(1, ids, 1.0).bool()


STUDENT_PENALTY = {
    "negative logits are divided too": lambda i, x, t: torch.where(_seen(i, x), x / t, x),
    "positive and negative are swapped": lambda i, x, t: torch.where(_seen(i, x), torch.where(x > 0, x * t, x / t), x),
    "compounded per occurrence": lambda i, x, t: torch.where(
        x > 0, x / t ** torch.zeros_like(x).scatter_add(1, i, torch.ones_like(i, dtype=x.dtype)),
        x * t ** torch.zeros_like(x).scatter_add(1, i, torch.ones_like(i, dtype=x.dtype))),
    "every token is penalised": lambda i, x, t: torch.where(x > 0, x / t, x * t),
}


def test_repetition_right_answer_passes(capsys):
    ex.check_repetition_penalty(right_penalty)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("words", list(STUDENT_PENALTY))
def test_each_repetition_mistake_is_named(words):
    with pytest.raises(ExerciseError, match=_named(words)):
        ex.check_repetition_penalty(STUDENT_PENALTY[words])


def test_every_declared_repetition_mistake_has_a_student_version():
    assert {d for d in ex.REPETITION_MISTAKES for w in STUDENT_PENALTY if w in d} == set(ex.REPETITION_MISTAKES)
