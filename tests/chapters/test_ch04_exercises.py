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


def student_flops(d, T, B, *, passes=3, flops_per_mac=2, attention=True, attention_per_token=True):
    """A student's count, written out term by term: per-token multiply-adds of the weights and of
    the two attention products, times FLOPs per multiply-add, times the passes (forward + backward)."""
    weight_macs = 4 * d * d + 2 * d * (4 * d)
    attention_macs = (2 * T * d if attention_per_token else 2 * d) if attention else 0
    return B * T * flops_per_mac * passes * (weight_macs + attention_macs)


def test_block_flops_right_answer_passes_and_the_measurement_is_the_counter(capsys):
    ex.check_block_train_flops(student_flops)
    assert "Correct" in capsys.readouterr().out
    # the measurement is FlopCounterMode's: a bias-free block would count the same (biases add no
    # matrix products), a longer sequence counts more than proportionally
    assert ex.measured_block_train_flops(64, 32, 1) == student_flops(64, 32, 1)
    assert ex.measured_block_train_flops(64, 64, 1) > 2 * ex.measured_block_train_flops(64, 32, 1)


@pytest.mark.parametrize("fn, words", [
    (lambda d, T, B: student_flops(d, T, B, passes=1), "only the forward pass is counted"),
    (lambda d, T, B: student_flops(d, T, B, passes=2), "the backward pass is counted like the forward"),
    (lambda d, T, B: student_flops(d, T, B, attention=False), "the attention matrix products are missing"),
    (lambda d, T, B: student_flops(d, T, B, flops_per_mac=1), "multiply-adds, not FLOPs"),
    (lambda d, T, B: student_flops(d, T, B, attention_per_token=False), "counted per sequence"),
])
def test_each_block_flops_mistake_is_named(fn, words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + words):
        ex.check_block_train_flops(fn)
    assert any(words in d for d in ex.BLOCK_FLOPS_MISTAKES)


def test_block_flops_measurement_rejects_bad_sizes():
    with pytest.raises(ValueError, match="d_model: expected a multiple of the 4 heads, got 30"):
        ex.measured_block_train_flops(30, 8, 1)
    with pytest.raises(ValueError, match="seq_len: expected a positive int, got 0"):
        ex.measured_block_train_flops(32, 0, 1)
