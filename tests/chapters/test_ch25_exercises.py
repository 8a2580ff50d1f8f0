"""Chapter 25's exercise checks: the right answers pass, and each declared mistake, written the way
a student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import pytest

from roadmap_lib import economics
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import exercises as ex
from roadmap_lib.exercises import ExerciseError
from roadmap_lib.tokenizers import CharTokenizer


def test_right_answers_pass(capsys):
    ex.check_gpu_hours(lambda n, d, p, m: 6 * n * d / (p * m) / 3600)
    ex.check_recovered(lambda patched, clean, corrupt: (patched - corrupt) / (clean - corrupt))
    assert capsys.readouterr().out.count("Correct") == 2


STUDENT_HOURS = {
    "forward pass only": lambda n, d, p, m: 2 * n * d / (p * m) / 3600,
    "MFU is left out": lambda n, d, p, m: 6 * n * d / p / 3600,
    "divided by the MFU instead of multiplied": lambda n, d, p, m: 6 * n * d * m / p / 3600,
    "in seconds": lambda n, d, p, m: 6 * n * d / (p * m),
}


@pytest.mark.parametrize("mistake", STUDENT_HOURS)
def test_gpu_hours_mistakes_are_named(mistake):
    with pytest.raises(ExerciseError, match=f"likely mistake: .*{mistake}"):
        ex.check_gpu_hours(STUDENT_HOURS[mistake])


def test_gpu_hours_refuses_the_library():
    def cheat(n, d, p, m):
        return economics.accelerator_hours(economics.training_flops(n, d), economics.Hardware("x", p, 1, 1), m)

    with pytest.raises(ExerciseError, match="calls the library's own"):
        ex.check_gpu_hours(cheat)


STUDENT_RECOVERED = {
    "share still missing": lambda p, c, k: 1 - (p - k) / (c - k),
    "denominator is reversed": lambda p, c, k: (p - k) / (k - c),
    "numerator does not subtract": lambda p, c, k: p / (c - k),
    "divided by the clean value": lambda p, c, k: (p - k) / c,
}


@pytest.mark.parametrize("mistake", STUDENT_RECOVERED)
def test_recovered_mistakes_are_named(mistake):
    with pytest.raises(ExerciseError, match=f"likely mistake: .*{mistake}"):
        ex.check_recovered(STUDENT_RECOVERED[mistake])


ROWS = [{"en": "ab cd", "fr": "abcde fgh", "ko": "ab", "hi": "abcdefgh"},
        {"en": "abcdefghij", "fr": "abc", "ko": "abcdefghijk", "hi": "a"},
        {"en": "a", "fr": "ab", "ko": "abc", "hi": "abcd"}]


def _tok():
    return CharTokenizer().train("abcdefghijk ")


def test_premium_right_answer_and_mistakes():
    tok = _tok()
    ex.check_premium(lambda t, rows, lang: sum(len(t.encode(r[lang])) for r in rows)
                     / sum(len(t.encode(r["en"])) for r in rows), tok, ROWS)
    with pytest.raises(ExerciseError, match="likely mistake: the mean of per-message ratios"):
        ex.check_premium(lambda t, rows, lang: sum(len(t.encode(r[lang])) / len(t.encode(r["en"]))
                                                   for r in rows) / len(rows), tok, ROWS)
    with pytest.raises(ExerciseError, match="likely mistake: inverted"):
        ex.check_premium(lambda t, rows, lang: sum(len(t.encode(r["en"])) for r in rows)
                         / sum(len(t.encode(r[lang])) for r in rows), tok, ROWS)


def test_prediction_check(capsys):
    tok = _tok()
    truth = sum(len(r["ko"]) for r in ROWS) / sum(len(r["en"]) for r in ROWS)
    ex.check_prediction(1.0, truth, tok, ROWS, "ko")
    assert "you predicted 1.00" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="token premium of ko"):
        ex.check_prediction(1.0, truth + 0.1, tok, ROWS, "ko")
    with pytest.raises(ExerciseError, match="prediction: expected a positive number"):
        ex.check_prediction(-1, truth, tok, ROWS, "ko")


def _student_tokens(ep):
    """A student's right answer: walk the steps, growing the text as the loop did."""
    text, total = ep.prompt, 0
    for step in ep.steps:
        total += len(text) + len(step.output)
        text += step.output + (step.observation or "")
    return total


STUDENT_RUN_TOKENS = {
    "not only the prompt": lambda ep: sum(len(ep.prompt) + len(s.output) for s in ep.steps),
    "observations are part of the text": lambda ep: sum(
        len(ep.prompt) + sum(len(t.output) for t in ep.steps[:i]) + len(s.output) for i, s in enumerate(ep.steps)),
    "counts only what the model wrote": lambda ep: sum(len(s.output) for s in ep.steps),
    "KV cache kept across calls": lambda ep: len(ep.text),
}


def test_run_tokens_right_answer_passes(capsys):
    ex.check_run_tokens(_student_tokens)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", STUDENT_RUN_TOKENS)
def test_run_tokens_mistakes_are_named(mistake):
    with pytest.raises(ExerciseError, match=f"likely mistake: .*{mistake}"):
        ex.check_run_tokens(STUDENT_RUN_TOKENS[mistake])


def test_run_tokens_refuses_the_library():
    from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import agent_study

    with pytest.raises(ExerciseError, match="calls the library's own"):
        ex.check_run_tokens(lambda ep: agent_study.episode_tokens(ep))


class _WordTokenizer:
    """Tokens that are not characters: one token per space-separated word."""

    def encode(self, text):
        return text.split()


def test_counting_characters_is_named():
    with pytest.raises(ExerciseError, match="likely mistake: this counts characters, not tokens"):
        ex.check_premium(lambda t, rows, lang: sum(len(r[lang]) for r in rows) / sum(len(r["en"]) for r in rows),
                         _WordTokenizer(), ROWS)
