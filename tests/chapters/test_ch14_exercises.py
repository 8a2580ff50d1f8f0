"""Chapter 14's exercise checks: right answers pass, and each declared mistake, written the way a
student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import pytest
import torch
from mistake_tables import assert_every_mistake_has_a_student, assert_named, student_cases

from roadmap_lib.chapters.ch14_quantization import exercises as ex
from roadmap_lib.exercises import ExerciseError


def zeropoint(w, bits, g, *, include_zero=True, round_z=True, minus=False, n_levels=None, codes_dtype=torch.uint8):
    rows, cols = w.shape
    top = 2**bits - 1
    blocks = w.view(rows, cols // g, g)
    lo, hi = blocks.min(-1).values, blocks.max(-1).values
    if include_zero:
        lo, hi = torch.minimum(lo, torch.zeros(())), torch.maximum(hi, torch.zeros(()))
    s = (hi - lo) / (n_levels or top)
    s[s == 0] = 1.0
    z = torch.clamp(-lo / s, 0, top)
    z = z.round() if round_z else z
    q = torch.round(blocks / s[..., None]) + (-1 if minus else 1) * z[..., None]
    return q.clamp(0, top).reshape(rows, cols).to(codes_dtype), s, z.to(torch.uint8)


def gptq(w, hessian, bits, *, damp=0.01, inverse=True, upper=True, divide=True, fixed=True, absolute=True,
         copy=True):
    qmax = 2 ** (bits - 1) - 1
    W = w.clone() if copy else w
    n = hessian.shape[0]
    H = hessian + damp * hessian.diagonal().mean() * torch.eye(n, dtype=hessian.dtype)
    U = torch.linalg.cholesky(torch.linalg.inv(H) if inverse else H, upper=upper)
    scale = lambda m: (m.abs() if absolute else m).max(dim=1).values / qmax  # noqa: E731
    s = scale(W)
    out = torch.empty_like(W)
    for j in range(W.shape[1]):
        if not fixed:
            s = scale(W[:, j:])
        out[:, j] = (W[:, j] / s).round().clamp(-qmax, qmax) * s
        e = (W[:, j] - out[:, j]) / (U[j, j] if divide else 1)
        W[:, j:] = W[:, j:] - torch.outer(e, U[j, j:])
    return out


def test_right_answers_pass(capsys):
    ex.check_zeropoint_quantize(zeropoint)
    ex.check_gptq_by_hand(gptq)
    out = capsys.readouterr().out
    assert out.count("Correct") == 3 and "against round-to-nearest's" in out


STUDENTS = {
    ex.check_zeropoint_quantize: (ex.ZEROPOINT_MISTAKES, {
        "lo and hi are not widened to include 0": lambda w, b, g: zeropoint(w, b, g, include_zero=False),
        "the zero point is not rounded": lambda w, b, g: zeropoint(w, b, g, round_z=False),
        "the zero point is subtracted": lambda w, b, g: zeropoint(w, b, g, minus=True),
        "the range is divided by 2**bits": lambda w, b, g: zeropoint(w, b, g, n_levels=2**b),
    }),
    ex.check_gptq_by_hand: (ex.GPTQ_MISTAKES, {
        "no dampening": lambda w, h, b: gptq(w, h, b, damp=0.0),
        "U is the Cholesky factor of H": lambda w, h, b: gptq(w, h, b, inverse=False),
        "the lower Cholesky factor is used": lambda w, h, b: gptq(w, h, b, upper=False),
        "the error is not divided by U_jj": lambda w, h, b: gptq(w, h, b, divide=False),
        "the scales are recomputed from the updated weights": lambda w, h, b: gptq(w, h, b, fixed=False),
        "the scales use the max, not the max absolute value": lambda w, h, b: gptq(w, h, b, absolute=False),
    }),
}


@pytest.mark.parametrize("check, words, fn", student_cases(STUDENTS))
def test_each_mistake_is_named(check, words, fn):
    assert_named(check, words, fn)


def test_every_declared_mistake_has_a_student_version():
    assert_every_mistake_has_a_student(STUDENTS)


def test_generic_mistakes_are_named_too():
    with pytest.raises(ExerciseError, match="codes has dtype torch.float32, expected torch.uint8"):
        ex.check_zeropoint_quantize(lambda w, b, g: zeropoint(w, b, g, codes_dtype=torch.float32))
    with pytest.raises(ExerciseError, match="changed its argument 1 in place"):
        ex.check_gptq_by_hand(lambda w, h, b: gptq(w, h, b, copy=False))
    from roadmap_lib.quantization import quantize

    with pytest.raises(ExerciseError, match="library's own `quantize`"):
        ex.check_zeropoint_quantize(lambda w, b, g: tuple(quantize(w, b, "zeropoint", g)))
