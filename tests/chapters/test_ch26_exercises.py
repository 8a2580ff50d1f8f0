"""Chapter 26's exercise checks: the right answers pass; each declared mistake, written the way a
student would write it (independently of the module's mistake functions), is named."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from roadmap_lib.chapters.ch26_deployment import exercises as ex
from roadmap_lib.exercises import ExerciseError


def stream(lines, *, stop=True, strip=False, sep=""):
    pieces = []
    for line in lines:
        if line == "data: [DONE]":
            if stop:
                break
        elif line.startswith("data: "):
            pieces.append(json.loads(line.removeprefix("data: "))["choices"][0]["text"])
    text = sep.join(pieces)
    return text.strip() if strip else text


def every_line_json(lines):
    return "".join(json.loads(line[6:])["choices"][0]["text"] for line in lines if line.strip())


def percentile(x, q, *, sort=True, shift=-1):
    s = torch.sort(x).values if sort else x
    return s[min(max(math.ceil(q * len(s) / 100) + shift, 0), len(s) - 1)]


def test_right_answers_pass(capsys):
    ex.check_stream_text(stream)
    ex.check_percentile(percentile)
    ex.check_percentile(lambda x, q: float(percentile(x, q)))
    ex.check_little(lambda clients, rps: clients / rps)
    assert capsys.readouterr().out.count("Correct") == 4


STUDENT = {
    (ex.check_stream_text, "the text was stripped"): lambda lines: stream(lines, strip=True),
    (ex.check_stream_text, "reading past 'data: [DONE]'"): lambda lines: stream(lines, stop=False),
    (ex.check_stream_text, "every line is parsed as JSON"): every_line_json,
    (ex.check_stream_text, "joined with a space"): lambda lines: stream(lines, sep=" "),
    (ex.check_percentile, "not sorted"): lambda x, q: percentile(x, q, sort=False),
    (ex.check_percentile, "interpolating between two samples"):
        lambda x, q: torch.tensor(sorted(x.tolist())).quantile(q / 100),
    (ex.check_percentile, "off by one"): lambda x, q: percentile(x, q, shift=0),
    (ex.check_percentile, "the mean is not a percentile"): lambda x, q: x.sum() / len(x),
    (ex.check_little, "the ratio is upside down"): lambda clients, rps: rps / clients,
    (ex.check_little, "1 / throughput"): lambda clients, rps: 1.0 / rps,
}


@pytest.mark.parametrize("check, words", list(STUDENT), ids=lambda x: getattr(x, "__name__", x))
def test_each_mistake_is_named(check, words):
    with pytest.raises(ExerciseError, match="(?i)likely mistake: .*" + re.escape(words)):
        check(STUDENT[check, words])


@pytest.mark.parametrize("table", [ex.STREAM_MISTAKES, ex.PERCENTILE_MISTAKES, ex.LITTLE_MISTAKES])
def test_every_declared_mistake_has_a_student_version(table):
    assert {d for d in table for _, words in STUDENT if words in d} == set(table)
