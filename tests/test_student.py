"""`make student`: solutions stubbed, solution prose dropped, outputs cleared, no solution survives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from tools.make_student import StudentError, studentize

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
pytestmark = pytest.mark.student


def split_lines(nb) -> tuple[set[str], set[str]]:
    """(solution lines, public lines) of a chapter, found independently of tools/make_student.py.

    Solution lines: fenced code, and everything inside solution-start/solution-end regions.
    Public lines: everything else. Only distinctive lines (12 characters or more) count.
    """
    solution, public, in_region = set(), set(), False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if "{solution-start}" in cell.source:
                in_region = "{solution-end}" not in cell.source
                continue
            if "{solution-end}" in cell.source:
                solution.update(l.strip() for l in cell.source.split("```{solution-end}")[0].splitlines())
                in_region = False
                continue
            (solution if in_region else public).update(l.strip() for l in cell.source.splitlines())
        elif in_region and "### BEGIN SOLUTION" not in cell.source:
            solution.update(l.strip() for l in cell.source.splitlines())  # unfenced code in a solution
        else:
            inside = False  # the def line and signature stay public; the fenced body is the solution
            for line in cell.source.splitlines():
                if "### BEGIN SOLUTION" in line:
                    inside = True
                elif "### END SOLUTION" in line:
                    inside = False
                else:
                    (solution if inside else public).add(line.strip())
    keep = lambda lines: {l for l in lines if len(l) >= 12}
    return keep(solution), keep(public)


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    subprocess.run([sys.executable, "tools/make_student.py", "notebooks", str(out)], cwd=ROOT, check=True)
    return out


@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_no_solution_survives(py, student_dir):
    source = jupytext.read(py)
    student_path = student_dir / f"{py.stem}.ipynb"
    student = nbformat.read(student_path, as_version=4)
    nbformat.validate(student)
    text = "\n".join(c.source for c in student.cells)
    solution, public = split_lines(source)
    # A line that also stands outside every solution (an import, a shared call) is not a secret.
    leaked = [l for l in solution - public if l in text]
    assert not leaked, f"{student_path.name} still contains solution lines: {leaked[:5]}"
    for marker in ("### BEGIN SOLUTION", "### END SOLUTION", "{solution-start}", "{solution-end}"):
        assert marker not in text, f"{student_path.name} still contains '{marker}'"
    n_fences = sum(c.source.count("### BEGIN SOLUTION") for c in source.cells)
    assert text.count("raise NotImplementedError") >= n_fences
    assert text.count("{exercise-start}") >= 3, "the exercise prompts stay"
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code"), "outputs are cleared"


def test_stubs_keep_the_signature_and_indentation():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 99. Test"),
        nbformat.v4.new_markdown_cell("```{solution-start} ex-1\n:class: dropdown\n```"),
        nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    secret = x * 2\n    return secret\n    ### END SOLUTION"),
        nbformat.v4.new_markdown_cell("The secret is doubling.\n\n```{solution-end}\n```"),
        nbformat.v4.new_code_cell("check(f)"),
    ]
    out, stubs = studentize(nb, "test")
    sources = [c.source for c in out.cells]
    assert stubs == 1
    assert 'def f(x):\n    raise NotImplementedError("write your solution here")' in sources
    assert not any("secret" in s for s in sources)
    assert "check(f)" in sources


@pytest.mark.parametrize("broken", [
    "def f():\n    ### BEGIN SOLUTION\n    return 1\n",
    "def f():\n    return 1\n    ### END SOLUTION\n",
])
def test_malformed_fences_are_reported(broken):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(broken)]
    with pytest.raises(StudentError, match="SOLUTION"):
        studentize(nb, "broken.py")


def test_unclosed_solution_region_is_reported():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("```{solution-start} ex\n:class: dropdown\n```"),
                nbformat.v4.new_code_cell("x = 1")]
    with pytest.raises(StudentError, match="never closed"):
        studentize(nb, "open.py")


def test_the_handout_holds_the_student_notebooks_and_no_solution(student_dir, tmp_path):
    """The archive a teacher hands out: the same student notebooks (so the leak check above covers
    them), the library, data and install files, a README, and no chapter source or test. The library
    implements what some exercises ask for (the chapters import it), so the solution-line scan
    covers every file of the archive outside roadmap_lib/ and kernels/."""
    import zipfile

    from tools.make_student import HANDOUT, HANDOUT_DIR, HANDOUT_FILES

    archive = zipfile.ZipFile(student_dir / HANDOUT)
    names = archive.namelist()
    prefix = f"{HANDOUT_DIR}/"
    assert all(n.startswith(prefix) for n in names)
    rel = [n[len(prefix):] for n in names]
    notebooks = sorted(n for n in rel if n.startswith("notebooks/"))
    assert notebooks == [f"notebooks/{p.stem}.ipynb" for p in CHAPTERS]
    for name in notebooks:
        assert archive.read(prefix + name) == (student_dir / name.split("/")[1]).read_bytes()
    assert not [n for n in rel if n.startswith("tests/") or (n.startswith("notebooks/") and n.endswith(".py"))]
    assert set(HANDOUT_FILES) <= set(rel) and "README.md" in rel
    assert "roadmap_lib/__init__.py" in rel and "kernels/flash.py" in rel
    assert "data/jargon.txt" in rel
    readme = archive.read(prefix + "README.md").decode()
    assert "make lab" in readme and "py make.py lab" in readme

    outside_library = [n for n in rel if not n.startswith(("roadmap_lib/", "kernels/", "data/"))]
    texts = {n: archive.read(prefix + n).decode("utf-8", "replace") for n in outside_library}
    for py in CHAPTERS:
        solution, public = split_lines(jupytext.read(py))
        secret = solution - public
        leaked = [(n, l) for n, t in texts.items() for l in secret if l in t]
        assert not leaked, f"{py.stem}: solution lines in the handout: {leaked[:3]}"

    archive.extractall(tmp_path)
    probe = subprocess.run(
        [sys.executable, "-S", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import pathlib;"
         "root = pathlib.Path(sys.argv[1]); import importlib.util as u;"
         "spec = u.spec_from_file_location('m', root / 'make.py'); m = u.module_from_spec(spec);"
         "spec.loader.exec_module(m); print(sorted(m.STAGES) == sorted(sys.argv[2].split(',')))",
         str(tmp_path / HANDOUT_DIR), ",".join(sorted(__import__("make").STAGES))],
        capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "True", probe.stderr
