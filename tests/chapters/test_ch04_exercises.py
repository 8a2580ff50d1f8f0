"""Chapter 04's exercise checks: the right answers pass, and each declared mistake, written the way
a student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import math

import pytest
import torch

from roadmap_lib.chapters.ch04_core_components import exercises as ex
from roadmap_lib.exercises import ExerciseError


def attention(q, k, v, *, scale=None, mask_from=1, dim=-1):
    L, d = q.shape[-2], q.shape[-1]
    s = q @ k.transpose(-2, -1) * (1 / math.sqrt(d) if scale is None else scale(d))
    if mask_from is not None:
        s = s.masked_fill(torch.triu(torch.ones(L, L), diagonal=mask_from).bool(), -float("inf"))
    return torch.nan_to_num(torch.softmax(s, dim=dim)) @ v


STUDENT_ATTENTION = {
    "not scaled by 1/√d": lambda q, k, v: attention(q, k, v, scale=lambda d: 1.0),
    "causal mask is missing": lambda q, k, v: attention(q, k, v, mask_from=None),
    "hides the query's own position": lambda q, k, v: attention(q, k, v, mask_from=0),
    "lets each query see the next key": lambda q, k, v: attention(q, k, v, mask_from=2),
    "over the queries (dim -2)": lambda q, k, v: attention(q, k, v, dim=-2),
    "divided by d instead of √d": lambda q, k, v: attention(q, k, v, scale=lambda d: 1 / d),
}


def test_right_answers_pass(capsys):
    ex.check_causal_attention(attention)
    ex.check_rms_norm(lambda x, w, eps: x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w)
    ex.check_kv_cache_bytes(lambda n, h, d, L, b, B: 2 * n * h * d * L * b * B)
    ex.check_window_mask(lambda L, w: torch.tril(torch.ones(L, L, dtype=torch.bool))
                         & ~torch.tril(torch.ones(L, L, dtype=torch.bool), diagonal=-w))
    assert capsys.readouterr().out.count("Correct") >= 6


@pytest.mark.parametrize("words", list(STUDENT_ATTENTION))
def test_each_attention_mistake_is_named(words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + words.replace("(", r"\(").replace(")", r"\)")):
        ex.check_causal_attention(STUDENT_ATTENTION[words])


def test_every_declared_attention_mistake_has_a_student_version():
    named = {d for d in ex.CAUSAL_ATTENTION_MISTAKES for words in STUDENT_ATTENTION if words in d}
    assert named == set(ex.CAUSAL_ATTENTION_MISTAKES)


STUDENT_RMS = {
    "eps is added outside the square root": lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True) ** 0.5 + eps) * w,
    "over the first dimension": lambda x, w, eps: x / torch.sqrt(x.pow(2).mean(0, keepdim=True) + eps) * w,
    "that is LayerNorm": lambda x, w, eps: torch.nn.functional.layer_norm(x, x.shape[-1:], eps=eps) * w,
    "the weight is missing": lambda x, w, eps: x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps),
    "not its square root": lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True) + eps) * w,
}


@pytest.mark.parametrize("words", list(STUDENT_RMS))
def test_each_rms_norm_mistake_is_named(words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + words):
        ex.check_rms_norm(STUDENT_RMS[words])
    assert any(words in d for d in ex.RMS_NORM_MISTAKES)


@pytest.mark.parametrize("fn, words", [
    (lambda n, h, d, L, b, B: n * h * d * L * b * B, "only the keys are counted"),
    (lambda n, h, d, L, b, B: 2 * n * h * d * L * b, "bytes per value are left out"),
    (lambda n, h, d, L, b, B: 2 * n * h * d * L * B, "the batch is left out"),
])
def test_each_kv_cache_mistake_is_named(fn, words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + words):
        ex.check_kv_cache_bytes(fn)


@pytest.mark.parametrize("fn, words", [
    (lambda L, w: torch.tril(torch.ones(L, L, dtype=torch.bool), -1)
     & ~torch.tril(torch.ones(L, L, dtype=torch.bool), diagonal=-w), "only on the diagonal"),
    (lambda L, w: torch.tril(torch.ones(L, L, dtype=torch.bool), -1)
     & ~torch.tril(torch.ones(L, L, dtype=torch.bool), diagonal=-w - 1), "shifted one position"),
    (lambda L, w: ~torch.tril(torch.ones(L, L, dtype=torch.bool), diagonal=-w), "see the future"),
])
def test_window_mask_mistakes_are_named_by_the_generic_mask_checks(fn, words):
    with pytest.raises(ExerciseError, match=words):
        ex.check_window_mask(fn)


def _student_window(L, w, *, back=None, ahead=0):
    i, j = torch.arange(L).view(-1, 1), torch.arange(L).view(1, -1)
    back = w - 1 if back is None else back
    return (j <= i + ahead) & (i - j <= back)


@pytest.mark.parametrize("fn, words", [
    (lambda L, w: _student_window(L, w, back=w), "one too wide"),
    (lambda L, w: _student_window(L, w) & ~torch.eye(L, dtype=torch.bool), "own position is left out"),
    (lambda L, w: _student_window(L, w, ahead=w - 1), "causal part is missing"),
    (lambda L, w: _student_window(L, w, back=L), "only the causal mask"),
])
def test_each_window_mask_mistake_is_named(fn, words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + words):
        ex.check_window_mask(fn)
    assert any(words in d for d in ex.WINDOW_MASK_MISTAKES)
