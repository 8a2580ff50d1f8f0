"""Chapter 10's exercise checks: right answers pass, and each declared mistake, written the way a
student would write it, is named."""

import pytest
import torch

from roadmap_lib.chapters.ch10_pretraining_finetuning import exercises as ex
from roadmap_lib.exercises import ExerciseError


def weights(n):
    return n / n.sum()


def doc_mask(d, same=True, causal=True, upper=False):
    L = len(d)
    m = torch.ones(L, L).bool()
    if same:
        m = m & (d.unsqueeze(1) == d.unsqueeze(0))
    if causal:
        m = m & (torch.triu(torch.ones(L, L)) if upper else torch.tril(torch.ones(L, L))).bool()
    return m


def adafactor_bytes(shapes, floats=False):
    total = 0
    for s in shapes:
        if len(s) == 1:
            total += s[0]
        else:
            lead = 1
            for x in s[:-2]:
                lead *= x
            total += lead * (s[-1] + s[-2])
    return total if floats else 4 * total


def test_right_answers_pass(capsys):
    ex.check_accumulation_weights(weights)
    ex.check_document_mask(doc_mask)
    ex.check_adafactor_bytes(adafactor_bytes)
    ex.check_prefix_mask(prefix)
    assert capsys.readouterr().out.count("Correct") >= 5


def prefix(p, L, boundary_off=False, leak=False, upper=False, causal_only=False):
    """A student's prefix mask, loop by loop, with the usual slips as switches."""
    m = torch.zeros(L, L, dtype=torch.bool)
    for i in range(L):
        for j in range(L):
            past = j >= i if upper else j <= i
            in_prefix = j <= p if boundary_off else j < p
            if causal_only:
                in_prefix = False
            if leak and i < p:
                past = True
            m[i, j] = past or in_prefix
    return m


def _full(shapes):
    total = 0
    for s in shapes:
        n = 1
        for x in s:
            n *= x
        total += n
    return total


@pytest.mark.parametrize("check, wrong, named", [
    (ex.check_accumulation_weights, lambda n: torch.ones(len(n)) / len(n), "divided by the number of micro-batches"),
    (ex.check_accumulation_weights, lambda n: n.float(), "token counts themselves"),
    (ex.check_accumulation_weights, lambda n: 1 / n.float(), "1 / (tokens of that micro-batch)"),
    (ex.check_document_mask, lambda d: doc_mask(d, same=False), "document boundaries are missing"),
    (ex.check_document_mask, lambda d: doc_mask(d, causal=False), "causal part is missing"),
    (ex.check_document_mask, lambda d: doc_mask(d, upper=True), "wrong way round"),
    (ex.check_adafactor_bytes, lambda shapes: 4 * _full(shapes), "full second moment"),
    (ex.check_adafactor_bytes, lambda shapes: 8 * _full(shapes), "AdamW's state"),
    (ex.check_adafactor_bytes, lambda shapes: adafactor_bytes(shapes, floats=True), "in floats, not bytes"),
    (ex.check_prefix_mask, lambda p, L: prefix(p, L, causal_only=True), "plain causal mask"),
    (ex.check_prefix_mask, lambda p, L: prefix(p, L, leak=True), "leaks into the prefix"),
    (ex.check_prefix_mask, lambda p, L: prefix(p, L, boundary_off=True), "off by one"),
    (ex.check_prefix_mask, lambda p, L: prefix(p, L, upper=True), "wrong way round"),
])
def test_declared_mistakes_are_named(check, wrong, named):
    with pytest.raises(ExerciseError, match="likely mistake") as err:
        check(wrong)
    assert named in str(err.value)


def test_unwritten_answer_is_reported():
    def stub(*args):
        raise NotImplementedError
    with pytest.raises(ExerciseError, match="not written yet"):
        ex.check_document_mask(stub)


def test_prefix_check_refuses_the_library_mask():
    from roadmap_lib.objectives import prefix_lm_mask

    with pytest.raises(ExerciseError, match="prefix_lm_mask"):
        ex.check_prefix_mask(lambda p, L: prefix_lm_mask(torch.tensor([p]), L)[0, 0])


def response_targets(ids, prompt_len, first_too=False, keep_last_prompt=False, no_mask=False, unshifted=False):
    """A student's loss mask for exercise 10.5, position by position, with the usual slips as switches."""
    if unshifted:
        return torch.tensor([-100 if t < prompt_len else int(ids[t]) for t in range(len(ids))])
    out = []
    for t in range(len(ids) - 1):
        nxt = int(ids[t + 1])
        cut = prompt_len if first_too else prompt_len - 2 if keep_last_prompt else prompt_len - 1
        out.append(nxt if no_mask or t >= cut else -100)
    return torch.tensor(out)


def test_response_mask_right_answer_passes(capsys):
    ex.check_response_targets(response_targets)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, named", [
    (lambda ids, p: response_targets(ids, p, no_mask=True), "prompt is not masked"),
    (lambda ids, p: response_targets(ids, p, first_too=True), "first response token is masked too"),
    (lambda ids, p: response_targets(ids, p, keep_last_prompt=True), "last prompt token is still a target"),
    (lambda ids, p: torch.where(response_targets(ids, p) == -100, ids[1:], -100), "mask is inverted"),
    (lambda ids, p: response_targets(ids, p, unshifted=True), "targets are not shifted"),
])
def test_response_mask_mistakes_are_named(wrong, named):
    with pytest.raises(ExerciseError, match="likely mistake") as err:
        ex.check_response_targets(wrong)
    assert named in str(err.value)


def test_response_mask_check_refuses_the_library_function():
    from roadmap_lib.chapters.ch10_pretraining_finetuning.instruct import mask_prompt_targets

    with pytest.raises(ExerciseError, match="mask_prompt_targets"):
        ex.check_response_targets(mask_prompt_targets)
