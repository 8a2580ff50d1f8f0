"""Write the student version of every chapter: solutions stubbed, solution prose dropped, no outputs.

    python tools/make_student.py notebooks student

A chapter marks its exercises with sphinx-exercise's gated syntax and nbgrader's fences:

* markdown cells from ```` ```{solution-start} ```` to ```` ```{solution-end} ```` are the worked
  answer shown in a dropdown on the site: in the student version they are removed;
* inside code, the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` are what the
  student writes: they become ``raise NotImplementedError(...)`` at the same indentation, so the
  ``def`` line and its signature stay and the check cell after it explains what is missing.

A code cell inside a solution region without fences is removed whole, so no solution can leak.
Every notebook is written to a temporary file and moved into place once it validates.

It also writes ``student/roadmap-student.zip``, the handout a teacher gives out as it is: the student
notebooks, the library and the data they read, the install files, and a short README with the
commands. It holds no chapter source (``notebooks/*.py`` carry the solutions) and no test, and
tests/test_student.py checks the notebooks inside it like the ones beside it.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

import jupytext
import nbformat

from roadmap_lib.fileio import atomic_path

BEGIN = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
STUB = 'raise NotImplementedError("write your solution here")'
NOTE = (
    "**Student version.** The worked solutions are removed: each exercise's code cell raises "
    "`NotImplementedError` until you write your answer, and the check cell after it tells you "
    "what is right or wrong. The full chapter is in the book."
)


class StudentError(ValueError):
    """A chapter's exercise markers are malformed (unclosed fence or solution region)."""


def stub_solutions(source: str, where: str) -> tuple[str, int]:
    """Replace each fenced solution in ``source`` by a stub; returns the new source and the count."""
    out, n, inside = [], 0, False
    for lineno, line in enumerate(source.splitlines(), 1):
        m = BEGIN.match(line)
        if m:
            if inside:
                raise StudentError(f"{where}, line {lineno}: '### BEGIN SOLUTION' inside another one")
            inside = True
            n += 1
            out.append(f"{m.group(1)}{STUB}")
        elif END.match(line):
            if not inside:
                raise StudentError(f"{where}, line {lineno}: '### END SOLUTION' without a BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise StudentError(f"{where}: '### BEGIN SOLUTION' is never closed by '### END SOLUTION'")
    return "\n".join(out), n


def studentize(nb: nbformat.NotebookNode, name: str) -> tuple[nbformat.NotebookNode, int]:
    cells, stubs, in_solution = [], 0, False
    for i, cell in enumerate(nb.cells):
        where = f"{name}, cell {i}"
        src = cell.source
        if cell.cell_type == "markdown" and "{solution-start}" in src:
            if in_solution:
                raise StudentError(f"{where}: solution-start inside an open solution region")
            in_solution = "{solution-end}" not in src
            continue
        if cell.cell_type == "markdown" and "{solution-end}" in src:
            if not in_solution:
                raise StudentError(f"{where}: solution-end without a solution-start")
            in_solution = False
            continue
        if cell.cell_type == "code":
            new_src, n = stub_solutions(src, where)
            if in_solution and n == 0:
                continue  # unfenced code inside a solution region: drop it whole
            cell.source = new_src
            stubs += n
            cell.outputs = []
            cell.execution_count = None
        elif in_solution:
            continue  # solution prose
        cells.append(cell)
    if in_solution:
        raise StudentError(f"{name}: a solution-start is never closed by solution-end")
    if cells and cells[0].cell_type == "markdown":
        cells.insert(1, nbformat.v4.new_markdown_cell(NOTE))
    nb.cells = cells
    nb.metadata.pop("jupytext", None)
    return nb, stubs


def write_atomic(nb: nbformat.NotebookNode, target: Path) -> None:
    nbformat.validate(nb)
    with atomic_path(target) as tmp:
        nbformat.write(nb, tmp)


ROOT = Path(__file__).resolve().parent.parent
HANDOUT = "roadmap-student.zip"
HANDOUT_DIR = "roadmap-student"  # the folder the archive unpacks into
# What a student's machine needs besides the notebooks: the library, its data, the install and the
# commands. Folders are taken whole, minus caches; nothing else from the repository goes in.
HANDOUT_FILES = ["pyproject.toml", "setup.py", "constraints.txt", "make.py", "Makefile",
                 "tools/__init__.py", "tools/sync_notebooks.py"]
HANDOUT_FOLDERS = ["roadmap_lib", "kernels", "data"]
HANDOUT_README = """# The Transformer Roadmap: student notebooks

The chapters are in `notebooks/`. Each ends with exercises: write your answer where a cell raises
`NotImplementedError`, then run the check cell after it, which tells you what is right or wrong.

You need Python 3.10 or newer. In this folder, run one command; it creates `.venv`, installs the
pinned packages (the first time only) and opens JupyterLab on `notebooks/`:

    TORCH=cpu make lab      # Linux (leave out TORCH=cpu with an NVIDIA GPU)
    make lab                # macOS
    py make.py lab         # Windows, no make needed

To install without opening JupyterLab: `make env` (or `py make.py env`).
Everything runs offline on a laptop CPU.
"""


def _handout_members(root: Path) -> list[tuple[Path, str]]:
    members = [(root / f, f) for f in HANDOUT_FILES]
    for folder in HANDOUT_FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                members.append((path, path.relative_to(root).as_posix()))
    missing = [str(p) for p, _ in members if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the handout needs files that are missing: {', '.join(missing)}")
    return members


def write_handout(student_notebooks: list[Path], out: Path, root: Path = ROOT) -> Path:
    """Write ``out/roadmap-student.zip`` (atomically) from the student notebooks; return its path."""
    target = out / HANDOUT
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{HANDOUT_DIR}/README.md", HANDOUT_README)
        for nb in student_notebooks:
            archive.write(nb, f"{HANDOUT_DIR}/notebooks/{nb.name}")
        for path, name in _handout_members(root):
            archive.write(path, f"{HANDOUT_DIR}/{name}")
    return target


def main(src_dir: str, out_dir: str) -> int:
    sources = sorted(Path(src_dir).glob("[0-9][0-9]_*.py"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sources:
        nb = jupytext.read(src)
        student, stubs = studentize(nb, src.name)
        write_atomic(student, out / f"{src.stem}.ipynb")
        written.append(out / f"{src.stem}.ipynb")
        print(f"{out / (src.stem + '.ipynb')}: {stubs} solution(s) stubbed")
    if not sources:
        print(f"no chapters (NN_slug.py) in {src_dir}")
        return 0
    handout = write_handout(written, out)
    print(f"{handout}: the handout ({handout.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
