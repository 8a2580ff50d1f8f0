"""A notebook cell that raises fails the notebook test run, and the failing cell is shown."""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat


def test_a_raising_cell_fails_the_run_and_is_shown(tmp_path, root):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A chapter with a bug"),
        nbformat.v4.new_code_cell("x = 40 + 2"),
        nbformat.v4.new_code_cell("assert x == 41, 'pipeline-self-test: the claim does not hold'"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "99_broken.ipynb"
    nbformat.write(nb, path)
    env = dict(os.environ, ROADMAP_EXECUTED_DIR=str(tmp_path / "executed"))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tools.nbreport", "--nbval-lax", "--nbval-current-env",
         "-o", "addopts=", "-o", "testpaths=", "-p", "no:cacheprovider", str(path)],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )
    log = out.stdout + out.stderr
    assert out.returncode != 0, log
    assert "pipeline-self-test: the claim does not hold" in log
    assert "assert x == 41" in log, "the failing cell's source should be printed"
    assert "notebook durations" in log and "FAILED (1 cell(s))" in log
    assert not (tmp_path / "executed" / "99_broken.ipynb").exists(), "a failing notebook is not kept as executed"
