"""Chapter 16's exercise checks: right answers pass, and each declared mistake, written the way a
student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import math
import re

import pytest
import torch

from roadmap_lib.chapters.ch16_peft_lora_qlora import exercises as ex
from roadmap_lib.exercises import ExerciseError


def scaling(alpha, r, rslora):
    return alpha / math.sqrt(r) if rslora else alpha / r


def merge(w, a, b, alpha, r, rslora=False):
    return w + scaling(alpha, r, rslora) * torch.mm(b, a)


def unmerge(w, a, b, alpha, r, rslora=False):
    return w - scaling(alpha, r, rslora) * torch.mm(b, a)


def quantize_state(x, book, block, *, signed_max=False, one_max=False, pad=True, zero_safe=True, cut=True):
    flat = x.flatten().float()
    n = flat.numel()
    if pad and n % block:
        flat = torch.cat([flat, flat.new_zeros(block - n % block)])
    rows = flat.view(-1, block)
    if one_max:
        absmax = flat.abs().max().repeat(rows.shape[0])
    else:
        absmax = rows.max(dim=1).values if signed_max else rows.abs().max(dim=1).values
    denom = absmax.clone()
    if zero_safe:
        denom[denom == 0] = 1.0
    normed = (rows / denom[:, None]).flatten()
    codes = torch.argmin((normed[:, None] - book[None, :]).abs(), dim=1)
    if cut:
        codes = codes[:n].view(x.shape)
    return codes.to(torch.uint8), absmax


def test_right_answers_pass(capsys):
    ex.check_merge_lora(merge, unmerge)
    ex.check_quantize_state(quantize_state)
    assert capsys.readouterr().out.count("Correct") == 3


STUDENT_MERGE = {
    "the scale alpha / r is missing": (lambda w, a, b, al, r, rs=False: w + b @ a, unmerge),
    "rsLoRA is ignored: with rslora=True": (lambda w, a, b, al, r, rs=False: w + al / r * (b @ a), unmerge),
    "the scale is upside down": (lambda w, a, b, al, r, rs=False: w + 1 / scaling(al, r, rs) * (b @ a), unmerge),
    "the factors are multiplied in the wrong order": (
        lambda w, a, b, al, r, rs=False: w + scaling(al, r, rs) * (a @ b), unmerge),
    "unmerge adds the update again": (merge, lambda w, a, b, al, r, rs=False: merge(w, a, b, al, r, rs)),
    "unmerge subtracts B A without the scale s": (merge, lambda w, a, b, al, r, rs=False: w - b @ a),
    "rsLoRA is ignored in unmerge": (merge, lambda w, a, b, al, r, rs=False: unmerge(w, a, b, al, r, False)),
}

STUDENT_STATE = {
    "not its largest ABSOLUTE value": lambda x, bk, bl: quantize_state(x, bk, bl, signed_max=True),
    "one absmax for the whole tensor": lambda x, bk, bl: quantize_state(x, bk, bl, one_max=True),
    "the last block is not padded": lambda x, bk, bl: quantize_state(x, bk, bl, pad=False),
    "an all-zero block divides 0 by 0": lambda x, bk, bl: quantize_state(x, bk, bl, zero_safe=False),
    "the padding's codes are kept": lambda x, bk, bl: quantize_state(x, bk, bl, cut=False),
}


@pytest.mark.parametrize("words", list(STUDENT_MERGE))
def test_each_merge_mistake_is_named(words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
        ex.check_merge_lora(*STUDENT_MERGE[words])


@pytest.mark.parametrize("words", list(STUDENT_STATE))
def test_each_state_mistake_is_named(words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
        ex.check_quantize_state(STUDENT_STATE[words])


def test_every_declared_mistake_has_a_student_version():
    declared = {**ex.MERGE_MISTAKES, **ex.UNMERGE_MISTAKES}
    assert {d for d in declared for w in STUDENT_MERGE if w in d} == set(declared)
    assert {d for d in ex.BLOCKWISE_MISTAKES for w in STUDENT_STATE if w in d} == set(ex.BLOCKWISE_MISTAKES)


def test_generic_mistakes_are_named_too():
    with pytest.raises(ExerciseError, match="codes has dtype torch.int64, expected torch.uint8"):
        ex.check_quantize_state(lambda x, bk, bl: (quantize_state(x, bk, bl)[0].long(), quantize_state(x, bk, bl)[1]))
    from roadmap_lib.optim import quantize_blockwise

    with pytest.raises(ExerciseError, match="library's own `quantize_blockwise`"):
        ex.check_quantize_state(lambda x, bk, bl: quantize_blockwise(x, bk, bl))
