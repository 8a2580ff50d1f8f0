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
"""

from __future__ import annotations

import re
import sys
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


def main(src_dir: str, out_dir: str) -> int:
    sources = sorted(Path(src_dir).glob("[0-9][0-9]_*.py"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for src in sources:
        nb = jupytext.read(src)
        student, stubs = studentize(nb, src.name)
        write_atomic(student, out / f"{src.stem}.ipynb")
        print(f"{out / (src.stem + '.ipynb')}: {stubs} solution(s) stubbed")
    if not sources:
        print(f"no chapters (NN_slug.py) in {src_dir}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
