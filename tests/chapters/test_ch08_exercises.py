"""Chapter 08's exercise checks: right answers pass, and each declared mistake, written the way a
student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import math

import pytest
import torch
from mistake_tables import assert_every_mistake_has_a_student, assert_named, student_cases

from roadmap_lib.chapters.ch08_text_to_text import exercises as ex
from roadmap_lib.exercises import ExerciseError


def rebuild(noisy, target, *, first_only=False, keep=False, run_on=False, drop=False):
    out = []
    for word in noisy:
        if not word.startswith("<extra_id_"):
            out.append(word)
            continue
        if drop:
            continue
        i = target.index(word) + 1
        span = []
        while i < len(target) and (run_on or not target[i].startswith("<extra_id_")):
            if not target[i].startswith("<extra_id_"):
                span.append(target[i])
            i += 1
        out += ([word] if keep else []) + (span[:1] if first_only else span)
    return out


def infill(words, spans, *, per_word=False, empty=True, move=True, tail=True):
    out, i = [], 0
    for start, length in spans:
        if length == 0 and not empty:
            continue
        out.extend(words[i:start])
        out.extend(["<mask>"] * max(1, length) if per_word else ["<mask>"])
        i = start + length if move else start
    if tail:
        out.extend(words[i:])
    return out


def bucket(rel, nb, md, *, flip=False, clamp=True, sign=True, half=True, rnd=False):
    n = nb // 2 if half else nb
    up = (rel < 0) if flip else (rel > 0)
    base = torch.where(up, n, 0) if sign else torch.zeros_like(rel)
    d = rel.abs()
    e = n // 2
    scaled = (d.clamp(min=1).double() / e).log() / math.log(md / e) * (n - e)
    far = e + (scaled.round() if rnd else scaled.floor()).long()
    far = torch.minimum(far, torch.tensor(n - 1)) if clamp else far
    return base + torch.where(d < e, d, far)


def target_length(n, d, mu, *, eos=True, sentinels=True, per_word=False, input_side=False):
    hidden = n * d
    spans = hidden if per_word else hidden / mu
    if input_side:
        return (n - hidden) + spans + 1
    return hidden + (spans if sentinels else 0) + (1 if eos else 0)


def test_right_answers_pass(capsys):
    ex.check_rebuild(rebuild)
    ex.check_infill(infill)
    ex.check_bucket(bucket)
    ex.check_target_length(target_length)
    ex.check_target_length(lambda n, d, mu: round(n * d) + round(round(n * d) / mu) + 1)  # whole words: exact
    assert capsys.readouterr().out.count("Correct") == 5


def test_target_length_is_measured_not_computed():
    """The check compares with simulated span corruption: the measurement is the rounded counts of
    span_corrupt (whole words, whole spans), which the continuous formula only approximates."""
    assert ex.measured_target_length(512, 0.15, 3.0) == 77 + 26 + 1  # round(76.8) words, round(77 / 3) spans
    assert abs(ex.measured_target_length(512, 0.15, 3.0) - target_length(512, 0.15, 3.0)) > 0.5
    with pytest.raises(ExerciseError, match="expected_target_length"):
        ex.check_target_length(lambda n, d, mu: target_length(n, d, mu) + 0.8)  # just outside the tolerance


def test_the_rebuild_cases_hide_spans_of_several_words():
    """Otherwise 'only the first word of its span' could not be told from the right answer."""
    lengths = []
    for (_, target), _ in ex.rebuild_cases():
        marks = [i for i, w in enumerate(target) if w.startswith("<extra_id_")] + [len(target)]
        lengths += [b - a - 1 for a, b in zip(marks, marks[1:])]
    assert max(lengths) >= 2 and min(lengths) >= 1


STUDENTS = {
    ex.check_rebuild: (ex.REBUILD_MISTAKES, {
        "only the first word of its span": lambda n, t: rebuild(n, t, first_only=True),
        "the sentinels are kept in the output": lambda n, t: rebuild(n, t, keep=True),
        "run on to the end of the target": lambda n, t: rebuild(n, t, run_on=True),
        "the sentinels are dropped": lambda n, t: rebuild(n, t, drop=True),
    }),
    ex.check_infill: (ex.INFILL_MISTAKES, {
        "each hidden word gets its own <mask>": lambda w, s: infill(w, s, per_word=True),
        "a span of length 0 inserts nothing": lambda w, s: infill(w, s, empty=False),
        "the cursor is not moved past the span": lambda w, s: infill(w, s, move=False),
        "the words after the last span are dropped": lambda w, s: infill(w, s, tail=False),
    }),
    ex.check_bucket: (ex.BUCKET_MISTAKES, {
        "the offset goes to the negative distances": lambda r, b, d: bucket(r, b, d, flip=True),
        "the far distances are not clamped": lambda r, b, d: bucket(r, b, d, clamp=False),
        "the sign is ignored": lambda r, b, d: bucket(r, b, d, sign=False),
        "each direction uses all num_buckets": lambda r, b, d: bucket(r, b, d, half=False),
        "the log part is rounded": lambda r, b, d: bucket(r, b, d, rnd=True),
    }),
    ex.check_target_length: (ex.TARGET_LENGTH_MISTAKES, {
        "the final </s> is not counted": lambda n, d, mu: target_length(n, d, mu, eos=False),
        "the sentinels are not counted": lambda n, d, mu: target_length(n, d, mu, sentinels=False),
        "one sentinel per hidden word": lambda n, d, mu: target_length(n, d, mu, per_word=True),
        "that is the length of the input": lambda n, d, mu: target_length(n, d, mu, input_side=True),
    }),
}


@pytest.mark.parametrize("check, words, fn", student_cases(STUDENTS))
def test_each_mistake_is_named(check, words, fn):
    assert_named(check, words, fn)


def test_every_declared_mistake_has_a_student_version():
    assert_every_mistake_has_a_student(STUDENTS)


def test_calling_the_library_buckets_is_refused():
    from roadmap_lib.positional import t5_relative_position_bucket

    with pytest.raises(ExerciseError, match="library's own `t5_relative_position_bucket`"):
        ex.check_bucket(lambda r, b, d: t5_relative_position_bucket(r, True, b, d))
