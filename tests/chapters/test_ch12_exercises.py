"""Chapter 12's exercise checks: right answers pass, and each declared mistake, written the way a
student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import pytest
import torch
from mistake_tables import assert_every_mistake_has_a_student, assert_named, student_cases

from roadmap_lib.chapters.ch12_efficient_architectures import exercises as ex
from roadmap_lib.exercises import ExerciseError


def step(S, z, q_t, k_t, v_t, *, old=False, one=1.0, divide=True, keep_z=True):
    fq = torch.where(q_t > 0, q_t, torch.expm1(q_t)) + one
    fk = torch.where(k_t > 0, k_t, torch.expm1(k_t)) + one
    S2 = S + torch.einsum("bhd,bhe->bhde", fk, v_t)
    z2 = z + fk if keep_z else fk
    Sr, zr = (S, z) if old else (S2, z2)
    o = torch.einsum("bhd,bhde->bhe", fq, Sr)
    if divide:
        o = o / torch.einsum("bhd,bhd->bh", fq, zr)[..., None]
    return o, S2, z2


def switch(logits, k, *, E=True, dim=1, raw=False, per_choice=False, first=False):
    T, n = logits.shape
    p = torch.softmax(logits, dim=dim)
    idx = torch.topk(p, k, dim=1).indices[:, :1] if first else torch.topk(p, k, dim=1).indices
    counts = torch.bincount(idx.flatten(), minlength=n).float()
    f = counts / (T * k if per_choice else T)
    P = (logits if raw else p).mean(0)
    return (n if E else 1) * torch.dot(f, P)


def test_right_answers_pass(capsys):
    ex.check_linear_step(step)
    ex.check_switch_loss(switch)
    assert capsys.readouterr().out.count("Correct") == 2


def test_the_switch_cases_are_the_librarys_too():
    from roadmap_lib.efficient.moe import load_balancing_loss

    logits = torch.randn(30, 5, generator=torch.Generator().manual_seed(0))
    assert switch(logits, 2).item() == pytest.approx(load_balancing_loss(logits, 2).item(), rel=1e-6)


STUDENTS = {
    ex.check_linear_step: (ex.LINEAR_STEP_MISTAKES, {
        "the state is read before it is updated": lambda *a: step(*a, old=True),
        "phi is elu without the + 1": lambda *a: step(*a, one=0.0),
        "the output is not normalised": lambda *a: step(*a, divide=False),
        "z is replaced, not accumulated": lambda *a: step(*a, keep_z=False),
    }),
    ex.check_switch_loss: (ex.SWITCH_MISTAKES, {
        "the factor E (the number of experts) is missing": lambda x, k: switch(x, k, E=False),
        "the softmax runs over the tokens (dim 0)": lambda x, k: switch(x, k, dim=0),
        "P_i is the mean of the raw logits": lambda x, k: switch(x, k, raw=True),
        "f_i is divided by tokens x k": lambda x, k: switch(x, k, per_choice=True),
        "f_i counts only each token's first choice": lambda x, k: switch(x, k, first=True),
    }),
}


@pytest.mark.parametrize("check, words, fn", student_cases(STUDENTS))
def test_each_mistake_is_named(check, words, fn):
    assert_named(check, words, fn)


def test_every_declared_mistake_has_a_student_version():
    assert_every_mistake_has_a_student(STUDENTS)


def test_calling_the_library_loss_is_refused():
    from roadmap_lib.efficient.moe import load_balancing_loss

    with pytest.raises(ExerciseError, match="library's own `load_balancing_loss`"):
        ex.check_switch_loss(lambda x, k: load_balancing_loss(x, k))


@pytest.mark.slow
def test_calling_transformers_loss_is_refused_once_imported():
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    ex.check_switch_loss(switch)
    with pytest.raises(ExerciseError, match="library's own `load_balancing_loss_func`"):
        ex.check_switch_loss(lambda x, k: load_balancing_loss_func((x,), x.shape[1], k))
