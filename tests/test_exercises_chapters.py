"""The chapters' exercise checks, across chapters: every exercise's check cell calls a check of its
chapter's ``exercises`` module (one that names the usual mistakes; the per-chapter tests in
tests/chapters/test_chNN_exercises.py feed each declared mistake to it), except the "predict, then
measure" exercises, whose check compares a prediction with a measurement; every check of a module
is used by its notebook; every check of a written function declares its mistakes; and an unwritten
answer (the student version's stub) is reported plainly.

Two rules are narrower than "every check": a check whose answer is a value rather than a function
(a prediction, a regular expression) cannot be handed a stub function, and in the student version
the stubbed cell that makes the value raises NotImplementedError itself, before the check runs; so
the stub rule covers the checks whose every answer argument is a function the notebook defines. And
a mistake may be declared as a wrong function, a wrong pattern (a string: chapter 18's regular
expressions) or a predicate on a prediction (chapter 18's exercise 18.1).

CHAPTERS lists every chapter of the book (a test holds it to notebooks/); a new chapter joins it
with its first exercise.
"""

from __future__ import annotations

import ast
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
    "02": "02_tokenization_embeddings",
    "03": "03_positional_encodings",
    "04": "04_core_components",
    "05": "05_encoder_decoder",
    "06": "06_encoder_only",
    "07": "07_decoder_only",
    "08": "08_text_to_text",
    "09": "09_scaling_laws_emergence",
    "10": "10_pretraining_finetuning",
    "11": "11_prompting_distillation",
    "12": "12_efficient_architectures",
    "13": "13_flashattention_kernels",
    "14": "14_quantization",
    "15": "15_inference_optimization",
    "16": "16_peft_lora_qlora",
    "17": "17_llmops",
    "18": "18_decoding_generation",
    "19": "19_alignment",
    "20": "20_responsible_ai",
    "21": "21_evaluation",
    "22": "22_applications",
    "23": "23_long_context_rag",
    "24": "24_multimodal",
    "25": "25_multilingual_economics_frontiers",
    "26": "26_deployment",
}

# "Predict, then measure": the check compares the reader's prediction with a measurement.
PREDICT_THEN_MEASURE = {"ex-12-pairs", "ex-14-bytes", "ex-15-kvbytes", "ex-16-count", "ex-09-predict",
                        "ex-17-sample-size", "ex-18-distinct", "ex-19-beta", "ex-20-predict", "ex-21-ci",
                        "ex-24-vitb16", "ex-25-premium", "ex-26-little", "ex-10-adafactor", "ex-11-predict",
                        "ex-22-order", "ex-23-predict", "ex-24-guidance", "ex-02-predict-tokens",
                        "ex-05-bleu-predict", "ex-13-peak", "ex-01-carry", "ex-03-alibi-far",
                        "ex-06-mlm-shares", "ex-04-flops", "ex-07-positions", "ex-08-target-length"}


def test_every_chapter_is_listed():
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py")}
    assert set(CHAPTERS.values()) == notebooks
    assert all(slug.startswith(nn + "_") for nn, slug in CHAPTERS.items())


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
    for name in _checks(nn):  # a call at the start of a line, or one whose result is kept (`x = check_...(`)
        assert re.search(rf"^(\w+ = )?{name}\(", source, re.MULTILINE), f"notebook {nn} never calls {name}"


def _notebook_calls(nn: str) -> tuple[set[str], list[tuple[str, list[str]]]]:
    """(the functions the notebook defines, [(check name, [its arguments' source])] of each check call)."""
    defined, calls = set(), []
    for cell in jupytext.read(ROOT / "notebooks" / f"{CHAPTERS[nn]}.py").cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # a cell with IPython magics
            continue
        defined |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        calls += [(n.func.id, [ast.unparse(a) for a in n.args]) for n in ast.walk(tree)
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id.startswith("check_")]
    return defined, calls


def _function_checks() -> list[tuple[str, str]]:
    """(chapter, check) for the checks the notebook hands functions it defines, and nothing else."""
    out = []
    for nn in CHAPTERS:
        defined, calls = _notebook_calls(nn)
        checks = _checks(nn)
        for name, args in calls:
            if name in checks and args and all(a in defined for a in args) and (nn, name) not in out:
                out.append((nn, name))
    return out


FUNCTION_CHECKS = _function_checks()


@pytest.mark.parametrize("nn, name", FUNCTION_CHECKS)
def test_an_unwritten_answer_is_reported_as_not_written_yet(nn, name):
    check = _checks(nn)[name]
    n_answers = sum(p.default is inspect.Parameter.empty for p in inspect.signature(check).parameters.values())

    def stub(*args):
        raise NotImplementedError("write it")

    with pytest.raises(ExerciseError, match="not written yet"):
        check(*[stub] * n_answers)


@pytest.mark.parametrize("nn, name", FUNCTION_CHECKS)
def test_a_check_of_a_written_function_declares_its_mistakes(nn, name):
    source = inspect.getsource(_checks(nn)[name])
    assert re.search(r"mistakes=|\bMISTAKES\b|_MISTAKES\b", source), f"{nn} {name} declares no mistakes"


@pytest.mark.parametrize("nn", list(CHAPTERS))
def test_every_check_is_fed_by_a_chapter_test(nn):
    """Some tests/chapters/test_chNN_*.py (usually test_chNN_exercises.py) uses every check of the
    chapter by name: that is where wrong answers, written as a student would, are fed to it."""
    tests = sorted((ROOT / "tests" / "chapters").glob(f"test_ch{nn}_*.py"))
    assert tests, f"no tests/chapters/test_ch{nn}_*.py"
    text = "\n".join(p.read_text(encoding="utf-8") for p in tests)
    missing = [name for name in _checks(nn) if not re.search(rf"\b{name}\b", text)]
    assert not missing, f"chapter {nn}: no chapter test names {missing}"


@pytest.mark.parametrize("nn", list(CHAPTERS))
def test_every_declared_mistake_has_a_plain_words_name(nn):
    tables = {name: t for name, t in vars(_module(nn)).items() if name.endswith("MISTAKES") and isinstance(t, dict)}
    for name, table in tables.items():
        assert 2 <= len(table) <= 7, f"{name}: {len(table)} mistakes"
        for words, wrong in table.items():
            assert (callable(wrong) or isinstance(wrong, str)) and len(words.split()) >= 4, f"{name}: {words!r}"
