"""Chapter 06's exercise checks: the right answers pass, the library's own reference is refused,
and each declared mistake, written the way a student would write it (independently of the mistake
functions in the module), is named."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from mistake_tables import assert_every_mistake_has_a_student, assert_named

from roadmap_lib.chapters.ch06_encoder_only import exercises as ex
from roadmap_lib.chapters.ch06_encoder_only.finetune import token_labels
from roadmap_lib.chapters.ch06_encoder_only.pretrain import CLS, PAD, SEP
from roadmap_lib.exercises import ExerciseError
from roadmap_lib.metrics import token_f1
from roadmap_lib.objectives import distillation_loss


def labels(n_words, changed, context, *, offset=1, last_word=None, fill=-100, skip=True):
    out = torch.tensor([-100] + [0] * (last_word or n_words) + [fill] * (context - 1 - (last_word or n_words)))
    for k in changed:
        if k != -1 or not skip:
            out[k + offset] = 1
    return out


def f1(pred, gold):
    keep = gold != -100
    p, g = pred[keep] == 1, gold[keep] == 1
    tp = int((p & g).sum())
    if tp == 0:
        return 0.0
    precision, recall = tp / int(p.sum()), tp / int(g.sum())
    return 2 * precision * recall / (precision + recall)


def distil(zs, zt, y, T, alpha, *, t2=True, kl_order="teacher first", ce_T=1.0, swap=False, reduction="batchmean"):
    if kl_order == "teacher first":
        kl = F.kl_div(F.log_softmax(zs / T, -1), F.log_softmax(zt / T, -1), log_target=True, reduction=reduction)
    else:
        kl = F.kl_div(F.log_softmax(zt / T, -1), F.log_softmax(zs / T, -1), log_target=True, reduction=reduction)
    soft = kl * (T**2 if t2 else 1)
    hard = F.cross_entropy(zs / ce_T, y)
    a, b = (1 - alpha, alpha) if swap else (alpha, 1 - alpha)
    return a * soft + b * hard


def test_right_answers_pass(capsys):
    ex.check_token_labels(labels)
    ex.check_f1(f1)
    ex.check_distillation_loss(distil)
    assert capsys.readouterr().out.count("Correct") == 3


@pytest.mark.parametrize("check, reference, answer_name", [
    (ex.check_token_labels, token_labels, "lambda n, ks, c: token_labels(n, *ks, context=c)"),
    (ex.check_f1, token_f1, "lambda p, g: token_f1(p, g)"),
    (ex.check_distillation_loss, distillation_loss, "lambda *a: distillation_loss(*a)"),
])
def test_calling_the_library_reference_is_refused(check, reference, answer_name):
    answer = eval(answer_name, {reference.__name__: reference})  # a fixed string of this test
    with pytest.raises(ExerciseError, match="calls the library's own"):
        check(answer)


def _named(check, fn, words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
        check(fn)


STUDENT_LABELS = {
    "the shift of one for [CLS] is forgotten": lambda n, ks, c: labels(n, ks, c, offset=0),
    "the index -1 is not skipped": lambda n, ks, c: labels(n, ks, c, skip=False),
    "[SEP] is labelled 0 like a word": lambda n, ks, c: labels(n, ks, c, last_word=n + 1),
    "[SEP] and the padding are labelled 0": lambda n, ks, c: labels(n, ks, c, fill=0),
}


@pytest.mark.parametrize("words", list(STUDENT_LABELS))
def test_each_token_labels_mistake_is_named(words):
    _named(ex.check_token_labels, STUDENT_LABELS[words], words)


def _f1_everywhere(pred, gold):
    p, g = pred.flatten() == 1, gold.flatten() == 1
    tp = int((p & g).sum())
    return 0.0 if tp == 0 else 2 * tp / (int(p.sum()) + int(g.sum()))


def _f1_arithmetic(pred, gold):
    keep = gold != -100
    p, g = pred[keep] == 1, gold[keep] == 1
    tp = int((p & g).sum())
    return (tp / int(p.sum()) + tp / int(g.sum())) / 2


STUDENT_F1 = {
    "the positions where gold is -100 are counted": _f1_everywhere,
    "precision and recall are averaged": _f1_arithmetic,
    "it is the accuracy": lambda pred, gold: (pred[gold != -100] == gold[gold != -100]).float().mean().item(),
}


@pytest.mark.parametrize("words", list(STUDENT_F1))
def test_each_f1_mistake_is_named(words):
    _named(ex.check_f1, STUDENT_F1[words], words)


STUDENT_DISTIL = {
    "the T² factor in front of the KL term is missing": lambda *a: distil(*a, t2=False),
    "the KL runs the wrong way": lambda *a: distil(*a, kl_order="student first"),
    "the cross-entropy uses the softened logits": lambda zs, zt, y, T, alpha: distil(zs, zt, y, T, alpha, ce_T=T),
    "alpha and 1 − alpha are swapped": lambda *a: distil(*a, swap=True),
    "the KL is summed over the rows": lambda *a: distil(*a, reduction="sum"),
}


@pytest.mark.parametrize("words", list(STUDENT_DISTIL))
def test_each_distillation_mistake_is_named(words):
    _named(ex.check_distillation_loss, STUDENT_DISTIL[words], words)


@pytest.mark.parametrize("table, students", [
    (ex.TOKEN_LABELS_MISTAKES, STUDENT_LABELS), (ex.F1_MISTAKES, STUDENT_F1),
    (ex.DISTILLATION_MISTAKES, STUDENT_DISTIL),
])
def test_every_declared_mistake_has_a_student_version(table, students):
    assert {d for d in table for words in students if words in d} == set(table)


def test_an_unwritten_answer_is_reported():
    def stub(*args):
        raise NotImplementedError

    for check in (ex.check_token_labels, ex.check_f1, ex.check_distillation_loss):
        with pytest.raises(ExerciseError, match="not written yet"):
            check(stub)


# ---- exercise 06.4: predict, then measure the masked LM's shares -----------------------------------


def _sentences(n=4000, vocab=3005, seed=0):
    """Synthetic batch shaped like the pretraining data: [CLS] words [SEP] padding, 32 tokens."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((n, 32), PAD)
    lengths = torch.randint(5, 30, (n,), generator=g)
    for i, n_words in enumerate(lengths.tolist()):
        ids[i, 0], ids[i, n_words + 1] = CLS, SEP
        ids[i, 1:n_words + 1] = torch.randint(5, vocab, (n_words,), generator=g)
    return ids


IDS = _sentences()
RIGHT_SHARES = {"loss": 0.15, "changed": 0.15 * (0.8 + 0.1 * (1 - 1 / 3005))}

STUDENT_SHARES = {  # predictions a student might write, each making one declared mistake
    "not percentages": {"loss": 15.0, "changed": 13.5},
    "not only on the [MASK]ed ones": {"loss": 0.12, "changed": 0.135},
    "keep their own word": {"loss": 0.15, "changed": 0.15},
    "are changed too": {"loss": 0.15, "changed": 0.12},
    "not of the 15 % chosen ones": {"loss": 1.0, "changed": 0.9},
}


def test_the_right_share_prediction_passes(capsys):
    ex.check_mlm_shares(RIGHT_SHARES, IDS, 3005)
    assert "carry the loss" in capsys.readouterr().out


@pytest.mark.parametrize("words", list(STUDENT_SHARES))
def test_each_share_mistake_is_named(words):
    assert_named(lambda p: ex.check_mlm_shares(p, IDS, 3005), words, STUDENT_SHARES[words])


def test_every_declared_share_mistake_has_a_student_version():
    assert_every_mistake_has_a_student({"shares": (ex.MLM_SHARE_MISTAKES, STUDENT_SHARES)})


def test_a_malformed_or_far_share_prediction_is_refused():
    for bad in (0.15, {"loss": 0.15}, {"loss": "0.15", "changed": 0.13}, {"loss": -0.1, "changed": 0.1}):
        with pytest.raises(ExerciseError, match="should be"):
            ex.check_mlm_shares(bad, IDS, 3005)
    with pytest.raises(ExerciseError, match='"changed"') as info:
        ex.check_mlm_shares({"loss": 0.15, "changed": 0.145}, IDS, 3005)
    assert "likely mistake" not in str(info.value)


def test_the_share_measurement_counts_words_only():
    """The shares are fractions of the words: on the synthetic batch they land on BERT's rule, and a
    batch with a single word gives a share of 0 or 1 (the specials are never counted)."""
    got = ex.measure_mlm_shares(IDS, 3005)
    assert abs(got["loss"] - 0.15) < 0.005 and abs(got["changed"] - RIGHT_SHARES["changed"]) < 0.005
    only_specials = torch.tensor([[CLS, SEP, PAD, PAD], [CLS, 7, SEP, PAD]])
    got = ex.measure_mlm_shares(only_specials, 3005)
    assert got["loss"] in (0.0, 1.0) and got["changed"] in (0.0, 1.0) and got["changed"] <= got["loss"]
