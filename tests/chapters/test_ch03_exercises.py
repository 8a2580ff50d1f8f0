"""Chapter 03's exercise checks: the reference answers pass, and every declared mistake, written as
a student would, is named in the check's message."""

import math

import pytest
import torch
from mistake_tables import assert_every_mistake_has_a_student, assert_named

from roadmap_lib.chapters.ch03_positional_encodings import exercises as E
from roadmap_lib.exercises import ExerciseError


def sinusoidal(seq_len, d_model):
    pos = torch.arange(seq_len, dtype=torch.float32)[:, None]
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    table = torch.zeros(seq_len, d_model)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * omega), torch.cos(pos * omega)
    return table


def sinusoidal_from_one(seq_len, d_model):  # a student's version: positions 1 .. seq_len
    pos = torch.arange(1, seq_len + 1, dtype=torch.float32)[:, None]
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    table = torch.zeros(seq_len, d_model)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * omega), torch.cos(pos * omega)
    return table


def slopes(n):
    def geometric(k):
        return torch.tensor([2.0 ** (-8.0 * (i + 1) / k) for i in range(k)])
    m = 1
    while m * 2 <= n:
        m *= 2
    out = geometric(m)
    return torch.cat([out, geometric(2 * m)[0::2][: n - m]]) if m < n else out


def rope(x, positions, base=10000.0):
    d = x.shape[-1]
    phi = positions.float()[:, None] * base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2], out[..., 1::2] = a * phi.cos() - b * phi.sin(), a * phi.sin() + b * phi.cos()
    return out


def ntk(base, dim, factor):
    return base * factor ** (dim / (dim - 2))


CHECKS = {
    "sinusoidal": (E.check_sinusoidal, sinusoidal, E.SINUSOIDAL_MISTAKES),
    "alibi": (E.check_alibi_slopes, slopes, E.ALIBI_MISTAKES),
    "rope": (E.check_rope_interleaved, rope, E.ROPE_MISTAKES),
    "ntk": (E.check_ntk_base, ntk, E.NTK_MISTAKES),
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_the_reference_answer_passes(name):
    check, answer, _ = CHECKS[name]
    check(answer)


@pytest.mark.parametrize("name,mistake", [(n, m) for n, (_, _, ms) in CHECKS.items() for m in ms])
def test_each_declared_mistake_is_named(name, mistake):
    check, _, mistakes = CHECKS[name]
    wrong = mistakes[mistake]
    with pytest.raises(ExerciseError, match="likely mistake") as err:
        check(wrong)
    assert mistake in str(err.value)


def test_a_student_written_mistake_is_recognised():
    with pytest.raises(ExerciseError) as err:
        E.check_sinusoidal(sinusoidal_from_one)
    assert "the positions start at 1" in str(err.value)


def test_calling_the_library_is_refused():
    from roadmap_lib.positional import sinusoidal_encoding

    with pytest.raises(ExerciseError):
        E.check_sinusoidal(lambda n, d: sinusoidal_encoding(n, d))


# ---- exercise 03.5: predict, then measure how far ALiBi looks --------------------------------------


def _far_share(slope, length=256, window=64):
    """A student's arithmetic: softmax of -slope·distance over the 256 keys, summed beyond the window."""
    w = [math.exp(-slope * d) for d in range(length)]
    return sum(w[window:]) / sum(w)


RIGHT_FAR = [_far_share(m) for m in (2**-2, 2**-4, 2**-6, 2**-8)]

STUDENT_FAR = {  # predictions a student might write, each making one declared mistake
    "not percentages": [100 * x for x in RIGHT_FAR],
    "does not cut them off": [0.0, 0.0, 0.0, 0.0],
    "every key would get the same weight": [0.75, 0.75, 0.75, 0.75],
    "the slopes run the other way": RIGHT_FAR[::-1],
}


def test_the_right_far_prediction_passes(capsys):
    E.check_alibi_far_share(RIGHT_FAR)
    E.check_alibi_far_share(torch.tensor(RIGHT_FAR))
    assert "head 4 0.650" in capsys.readouterr().out


@pytest.mark.parametrize("words", list(STUDENT_FAR))
def test_each_far_mistake_is_named(words):
    assert_named(E.check_alibi_far_share, words, STUDENT_FAR[words])  # a prediction, not a function


def test_every_declared_far_mistake_has_a_student_version():
    assert_every_mistake_has_a_student({"far": (E.ALIBI_FAR_MISTAKES, STUDENT_FAR)})


def test_a_malformed_or_near_miss_far_prediction_is_refused():
    for bad in ("0.5", [0.1, 0.2], [float("nan")] * 4, [-0.1, 0.0, 0.3, 0.6]):
        with pytest.raises(ExerciseError, match="4 "):
            E.check_alibi_far_share(bad)
    near = RIGHT_FAR[:3] + [0.6]  # head 4 off by 0.05, no declared mistake
    with pytest.raises(ExerciseError, match="head 4") as info:
        E.check_alibi_far_share(near)
    assert "likely mistake" not in str(info.value)


def test_the_far_share_measurement_agrees_with_a_hand_count():
    """Two heads, 6 keys, window 2: the last query's weights are softmax(-m·d), d = 5..0; the far keys
    are d >= 2, hand-summed."""
    got = E.measure_alibi_far_share(2, 6, 2)
    for h, m in enumerate((2**-4, 2**-8)):
        w = [math.exp(-m * d) for d in range(6)]
        assert abs(got[h].item() - sum(w[2:]) / sum(w)) < 1e-6
    with pytest.raises(ValueError, match="window"):
        E.measure_alibi_far_share(4, 8, 8)
