"""The notebook pipeline's rules: sources are jupytext .py, .ipynb are generated and never committed,
pairs agree, and every chapter follows the book's conventions (ROADMAP.md, DESIGN.md)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))

# ROADMAP.md fixes every chapter's number and slug.
SLUGS = {
    "01": "why_transformers", "02": "tokenization_embeddings", "03": "positional_encodings",
    "04": "core_components", "05": "encoder_decoder", "06": "encoder_only", "07": "decoder_only",
    "08": "text_to_text", "09": "scaling_laws_emergence", "10": "pretraining_finetuning",
    "11": "prompting_distillation", "12": "efficient_architectures", "13": "flashattention_kernels",
    "14": "quantization", "15": "inference_optimization", "16": "peft_lora_qlora", "17": "llmops",
    "18": "decoding_generation", "19": "alignment", "20": "responsible_ai", "21": "evaluation",
    "22": "applications", "23": "long_context_rag", "24": "multimodal",
    "25": "multilingual_economics_frontiers", "26": "deployment",
}


def toc_files() -> list[str]:
    from tools.build_book import toc_files as _toc_files

    return _toc_files(ROOT / "_toc.yml")


def test_no_notebook_is_committed():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert not tracked, f".ipynb files are generated from notebooks/*.py and must not be committed: {tracked}"


def test_ipynb_are_ignored_by_git():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    probe = "notebooks/01_why_transformers.ipynb"
    out = subprocess.run(["git", "check-ignore", "-q", probe], cwd=ROOT)
    assert out.returncode == 0, f"{probe} should be ignored by .gitignore"


@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_pairs_agree(py):
    ipynb = py.with_suffix(".ipynb")
    if not ipynb.exists():
        pytest.skip(f"{ipynb.name} not generated yet (make sync)")
    src = jupytext.read(py)
    paired = nbformat.read(ipynb, as_version=4)
    a = [(c.cell_type, c.source) for c in src.cells]
    b = [(c.cell_type, c.source) for c in paired.cells]
    assert a == b, (
        f"{ipynb.name} and {py.name} differ (first at cell "
        f"{next(i for i, (x, y) in enumerate(zip(a + [None] * len(b), b + [None] * len(a))) if x != y)}): "
        "run `make sync` (the newer file wins)"
    )


def test_chapter_names_follow_the_roadmap():
    for py in CHAPTERS:
        number, slug = py.stem.split("_", 1)
        assert SLUGS.get(number) == slug, f"{py.name}: ROADMAP.md names chapter {number} '{SLUGS.get(number)}'"


def test_toc_lists_existing_files_and_every_chapter():
    files = toc_files()
    for f in files:
        candidates = [ROOT / f"{f}{ext}" for ext in (".md", ".py", ".ipynb")]
        assert any(c.exists() for c in candidates), f"_toc.yml names {f}, which does not exist"
    listed = {f for f in files if f.startswith("notebooks/")}
    for py in CHAPTERS:
        assert f"notebooks/{py.stem}" in listed, f"{py.name} is not in _toc.yml"


@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_conventions(py):
    text = py.read_text(encoding="utf-8")
    nb = jupytext.read(py)
    assert "format_name: percent" in text, f"{py.name}: not a jupytext percent file"
    first = nb.cells[0]
    number = py.stem[:2]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {number}. "), \
        f"{py.name}: the first cell must be the title '# {number}. ...'"
    for section in ("What you will learn", "What you need", "Run time"):
        assert section in first.source, f"{py.name}: the first cell needs a '{section}' section"
    assert "set_seed(" in text, f"{py.name}: seed everything with roadmap_lib.set_seed"
    assert "from roadmap_lib" in text, f"{py.name}: chapters import their building blocks from roadmap_lib"
    widget_cells = [c for c in nb.cells if c.cell_type == "code" and "nbval-ignore-output" in c.metadata.get("tags", [])
                    and re.search(r"\binteract(ive_output)?\b", c.source)]
    assert widget_cells, f"{py.name}: needs an ipywidgets explorer in a cell tagged nbval-ignore-output"
    for cell in widget_cells:
        assert "remove-output" in cell.metadata.get("tags", []), \
            f"{py.name}: tag the widget cell remove-output too (the site shows the static figure instead)"
    asserts = sum(c.source.count("assert ") for c in nb.cells if c.cell_type == "code")
    assert asserts >= 3, f"{py.name}: claims are proved with assert cells; found {asserts}"


@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_exercises_are_well_formed(py):
    nb = jupytext.read(py)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    labels = re.findall(r"```\{exercise-start\}\s*\n:label: (\S+)", md)
    assert len(labels) >= 3, f"{py.name}: at least three exercises, found {len(labels)}"
    assert md.count("{exercise-start}") == md.count("{exercise-end}"), f"{py.name}: unbalanced exercise markers"
    assert len(re.findall(r":label: ex-\S+\n:nonumber:", md)) == len(labels), \
        f"{py.name}: give each exercise-start ':nonumber:' after its label (no book-wide numbering)"
    solutions = re.findall(r"```\{solution-start\} (\S+)\s*\n:class: dropdown", md)
    assert sorted(solutions) == sorted(labels), \
        f"{py.name}: each exercise needs one dropdown solution; exercises {labels}, solutions {solutions}"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert code.count("### BEGIN SOLUTION") == code.count("### END SOLUTION") >= 3, \
        f"{py.name}: solution code is fenced by '### BEGIN SOLUTION' / '### END SOLUTION'"
    assert re.search(r"\bcheck_\w+\(", code), f"{py.name}: exercises are followed by a check from roadmap_lib.exercises"
    # Numbered per chapter, so that a teacher can assign "exercise 04.2": NN.1, NN.2, ... in order,
    # the same in the student notebooks (make_student keeps the prompts as they are).
    number = py.name[:2]
    titles = re.findall(r"\*\*Exercise (\d+(?:\.\d+)?)[ .*]", md)
    assert titles == [f"{number}.{k}" for k in range(1, len(labels) + 1)], \
        f"{py.name}: exercise titles must read 'Exercise {number}.1', '{number}.2', ... in order; got {titles}"
    assert all(label.startswith(f"ex-{number}-") for label in labels), f"{py.name}: labels are ex-{number}-name"
    # A hint (a dropdown admonition) between each exercise's prompt and its solution: a student who
    # is stuck opens the hint before the answer (CONTRIBUTING.md, "Exercises").
    for label in labels:
        between = md.split(f":label: {label}\n", 1)[1].split(f"{{solution-start}} {label}", 1)[0]
        assert re.search(r"```\{admonition\} Hint\s*\n:class: dropdown\n", between), \
            f"{py.name}: exercise {label} needs a dropdown hint (an admonition titled Hint) before its solution"


def test_config_files_parse():
    yaml.safe_load((ROOT / "_toc.yml").read_text())
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "cache"
