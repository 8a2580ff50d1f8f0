"""The chapters' exercise checks, across chapters: every exercise's check cell calls a check of its
chapter's ``exercises`` module (one that names the usual mistakes; the per-chapter tests in
tests/chapters/test_chNN_exercises.py feed each declared mistake to it), except the "predict, then
measure" exercises, whose check compares a prediction with a measurement; every check of a module
is used by its notebook; and an unwritten answer (the student version's stub) is reported plainly.

CHAPTERS lists the chapters whose checks have moved into their package; add a chapter here when
its checks do.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import jupytext
import pytest

from roadmap_lib.exercises import ExerciseError

ROOT = Path(__file__).resolve().parents[1]

CHAPTERS = {
    "01": "01_why_transformers",
    "05": "05_encoder_decoder",
    "07": "07_decoder_only",
    "08": "08_text_to_text",
    "12": "12_efficient_architectures",
    "14": "14_quantization",
    "15": "15_inference_optimization",
    "16": "16_peft_lora_qlora",
}

# "Predict, then measure": the check compares the reader's prediction with a measurement.
PREDICT_THEN_MEASURE = {"ex-12-pairs", "ex-14-bytes", "ex-15-kvbytes", "ex-16-count"}


def _module(nn: str):
    return importlib.import_module(f"roadmap_lib.chapters.ch{CHAPTERS[nn]}.exercises")


def _checks(nn: str) -> dict[str, object]:
    module = _module(nn)
    return {name: f for name, f in vars(module).items()
            if name.startswith("check_") and inspect.isfunction(f) and f.__module__ == module.__name__}


def _check_cells(nn: str) -> dict[str, str]:
    """Exercise label -> the code of the cells after its solution (up to the next markdown cell)."""
    cells = jupytext.read(ROOT / "notebooks" / f"{CHAPTERS[nn]}.py").cells
    out, label, after_solution = {}, None, False
    for cell in cells:
        if cell.cell_type == "markdown":
            found = re.search(r":label: (ex-[\w-]+)", cell.source)
            if found:
                label, after_solution = found.group(1), False
                out[label] = ""
            elif "{solution-end}" in cell.source:
                after_solution = True
            elif after_solution:
                after_solution = False
        elif after_solution and label:
            out[label] += cell.source + "\n"
    return out


@pytest.mark.parametrize("nn", list(CHAPTERS))
def test_every_exercise_check_cell_calls_a_check_of_its_chapter(nn):
    checks = set(_checks(nn))
    cells = _check_cells(nn)
    assert len(cells) >= 3, f"chapter {nn}: found only {sorted(cells)}"
    for label, code in cells.items():
        called = set(re.findall(r"\b(check_\w+)\(", code))
        if label in PREDICT_THEN_MEASURE:
            assert called, f"{label}: the check cell calls no check"
        else:
            assert called & checks, f"{label}: the check cell calls {sorted(called)}, none of {sorted(checks)}"


@pytest.mark.parametrize("nn", list(CHAPTERS))
def test_every_check_of_a_chapter_is_used_by_its_notebook(nn):
    source = (ROOT / "notebooks" / f"{CHAPTERS[nn]}.py").read_text(encoding="utf-8")
    for name in _checks(nn):
        assert re.search(rf"^{name}\(", source, re.M), f"notebook {nn} never calls {name}"


@pytest.mark.parametrize("nn, name", [(nn, name) for nn in CHAPTERS for name in _checks(nn)])
def test_an_unwritten_answer_is_reported_as_not_written_yet(nn, name):
    check = _checks(nn)[name]
    n_answers = sum(p.default is inspect.Parameter.empty for p in inspect.signature(check).parameters.values())

    def stub(*args):
        raise NotImplementedError("write it")

    with pytest.raises(ExerciseError, match="not written yet"):
        check(*[stub] * n_answers)


@pytest.mark.parametrize("nn", list(CHAPTERS))
def test_every_declared_mistake_has_a_plain_words_name(nn):
    tables = {name: t for name, t in vars(_module(nn)).items() if name.endswith("MISTAKES") and isinstance(t, dict)}
    for name, table in tables.items():
        assert 2 <= len(table) <= 7, f"{name}: {len(table)} mistakes"
        for words, wrong in table.items():
            assert callable(wrong) and len(words.split()) >= 4, f"{name}: {words!r}"
