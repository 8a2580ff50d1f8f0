"""Chapter 03's exercise checks: the reference answers pass, and every declared mistake, written as
a student would, is named in the check's message."""

import pytest
import torch

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
