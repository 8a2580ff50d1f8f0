"""Chapter 17's exercise checks: right answers pass; each declared mistake, written the way a
student would write it, is named."""

from __future__ import annotations

import math

import pytest
import torch

from roadmap_lib.chapters.ch17_llmops import exercises as ex
from roadmap_lib.exercises import ExerciseError


def ks(a, b, *, only_a=False, signed=False):
    a, b = torch.sort(a.flatten()).values, torch.sort(b.flatten()).values
    x = a if only_a else torch.cat([a, b])
    gap = torch.searchsorted(a, x, right=True) / len(a) - torch.searchsorted(b, x, right=True) / len(b)
    return float(gap.max() if signed else gap.abs().max())


def z(xa, na, xb, nb, *, pooled=True, flip=False, total=False):
    pa, pb = xa / na, xb / nb
    if pooled:
        p = (xa + xb) / (na + nb)
        se = math.sqrt(p * (1 - p) * (1 / (na + nb) if total else 1 / na + 1 / nb))
    else:
        se = math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    return ((pa - pb) if flip else (pb - pa)) / se


def n_per_arm(pa, pb, alpha, power, *, one_sided=False, no_power=False):
    from statistics import NormalDist

    za = NormalDist().inv_cdf(1 - alpha if one_sided else 1 - alpha / 2)
    zb = 0.0 if no_power else NormalDist().inv_cdf(power)
    pbar = (pa + pb) / 2
    return math.ceil((za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(pa * (1 - pa) + pb * (1 - pb))) ** 2
                     / (pa - pb) ** 2)


def test_right_answers_pass(capsys):
    ex.check_ks_statistic(ks)
    ex.check_two_proportion_z(z)
    ex.check_sample_size(n_per_arm)
    ex.check_sample_size(lambda pa, pb, alpha, power: float(n_per_arm(pa, pb, alpha, power)))
    ex.check_measured_power(0.79, 0.8, 2000)
    assert capsys.readouterr().out.count("Correct") == 5


STUDENT = {
    (ex.check_ks_statistic, "only at the points of the first sample"): lambda a, b: ks(a, b, only_a=True),
    (ex.check_ks_statistic, "the gap is signed"): lambda a, b: ks(a, b, signed=True),
    (ex.check_two_proportion_z, "not pooled"): lambda *c: z(*c, pooled=False),
    (ex.check_two_proportion_z, "sign is reversed"): lambda *c: z(*c, flip=True),
    (ex.check_two_proportion_z, r"1/\(n_a \+ n_b\)"): lambda *c: z(*c, total=True),
    (ex.check_sample_size, "two-sided"): lambda *c: n_per_arm(*c, one_sided=True),
    (ex.check_sample_size, "power term"): lambda *c: n_per_arm(*c, no_power=True),
}


@pytest.mark.parametrize("key", list(STUDENT), ids=[k[1] for k in STUDENT])
def test_each_mistake_is_named(key):
    check, words = key
    with pytest.raises(ExerciseError, match="likely mistake: .*" + words):
        check(STUDENT[key])


def test_every_declared_mistake_has_a_student_version():
    declared = {**ex.KS_MISTAKES, **ex.Z_MISTAKES, **ex.SAMPLE_SIZE_MISTAKES}
    import re

    named = {d for d in declared for (_, words) in STUDENT if re.search(words, d)}
    assert named == set(declared)


def test_unwritten_and_wrong_answers_fail():
    def todo(*args):
        raise NotImplementedError

    for check in (ex.check_ks_statistic, ex.check_two_proportion_z, ex.check_sample_size):
        with pytest.raises(ExerciseError, match="not written yet"):
            check(todo)
    with pytest.raises(ExerciseError):
        ex.check_sample_size(lambda *c: None)
    with pytest.raises(ExerciseError, match="simulated power"):
        ex.check_measured_power(0.6, 0.8, 2000)
    with pytest.raises(ExerciseError):
        ex.check_ks_statistic(lambda a, b: float((a.mean() - b.mean()).abs()))
