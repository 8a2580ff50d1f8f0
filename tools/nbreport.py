"""A pytest plugin for the notebook run (`make test-notebooks`), loaded with `-p tools.nbreport`.

nbval runs every code cell of every chapter as a test. This plugin adds two things:

* a table of each notebook's wall time (kernel start included), cells run and result, printed at
  the end, with the chapters over the 120 s budget of ROADMAP.md flagged;
* the executed notebooks, outputs included, written to ``_build/executed/`` when all of a
  notebook's cells passed, so the book test can build the site from them without running
  anything twice.

It works with pytest-xdist (``-n 2 --dist loadfile``: every cell of a notebook on one worker, in
order): the worker that ran a notebook writes its executed copy, and the table is built where the
reports arrive, from the reports alone.
"""

from __future__ import annotations

import copy
import os
from collections import defaultdict
from pathlib import Path

import nbformat
import pytest

from roadmap_lib.fileio import atomic_path

BUDGET_S = 120.0
EXECUTED_DIR = Path(os.environ.get("ROADMAP_EXECUTED_DIR", "_build/executed"))

_durations: dict[str, float] = defaultdict(float)
_cells: dict[str, int] = defaultdict(int)  # cells reported per notebook (for the table)
_executed: dict[str, int] = defaultdict(int)  # cells executed here (their execution counts)
_failed: dict[str, int] = defaultdict(int)
_files: dict[str, object] = {}


def _notebook_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _to_output(out) -> nbformat.NotebookNode:
    kind = out.get("output_type")
    if kind == "stream":
        return nbformat.v4.new_output("stream", name=out["name"], text=out["text"])
    if kind == "execute_result":
        return nbformat.v4.new_output(
            "execute_result", data=out["data"], metadata=out.get("metadata", {}),
            execution_count=out.get("execution_count"),
        )
    if kind == "error":
        return nbformat.v4.new_output(
            "error", ename=out["ename"], evalue=out["evalue"], traceback=out["traceback"]
        )
    return nbformat.v4.new_output("display_data", data=out["data"], metadata=out.get("metadata", {}))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when != "call" or not hasattr(item, "test_outputs"):
        return
    nb_file = item.parent
    _files[_notebook_of(item.nodeid)] = nb_file
    if item.test_outputs is not None:
        item.cell.outputs = [_to_output(o) for o in item.test_outputs]
        _executed[_notebook_of(item.nodeid)] += 1
        item.cell.execution_count = _executed[_notebook_of(item.nodeid)]
        for out in item.cell.outputs:
            if out.output_type == "execute_result":
                out.execution_count = item.cell.execution_count
    del outcome


def pytest_runtest_logreport(report):
    nb = _notebook_of(report.nodeid)
    if not nb.endswith(".ipynb"):
        return
    _durations[nb] += report.duration
    if report.when == "call":
        _cells[nb] += 1
    if report.failed:
        _failed[nb] += 1


def _write_executed(nb_path: str, nb_file) -> None:
    EXECUTED_DIR.mkdir(parents=True, exist_ok=True)
    nb = copy.deepcopy(nb_file.nb)
    target = EXECUTED_DIR / Path(nb_path).name
    with atomic_path(target) as tmp:
        nbformat.write(nb, tmp)


def pytest_sessionfinish(session, exitstatus):
    for nb_path, nb_file in _files.items():
        target = EXECUTED_DIR / Path(nb_path).name
        if _failed.get(nb_path):
            target.unlink(missing_ok=True)  # never leave a stale "executed" copy of a failing chapter
        else:
            _write_executed(nb_path, nb_file)


def pytest_terminal_summary(terminalreporter):
    if not _durations:
        return
    tr = terminalreporter
    tr.section("notebook durations")
    total = 0.0
    for nb, seconds in sorted(_durations.items()):
        total += seconds
        status = f"FAILED ({_failed[nb]} cell(s))" if _failed.get(nb) else "passed"
        flag = f"  OVER the {BUDGET_S:.0f} s budget" if seconds > BUDGET_S else ""
        tr.write_line(f"{seconds:8.1f} s  {_cells[nb]:4d} cells  {status:18s} {nb}{flag}")
    tr.write_line(f"{total:8.1f} s  total")
