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
    assert capsys.readouterr().out.count("Correct") >= 4


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
