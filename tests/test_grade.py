"""`make grade`: generated submissions (correct, partly wrong, crashing, hanging, trying the network,
writing outside their folder) give the expected CSV, and none of them takes the grader down."""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from tools import grade

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ["ex-99-double", "ex-99-mean"]
RIGHT = ("    return 2 * x\n", "    return x.mean().item()\n")


def submission(first: str, second: str, setup: str = "") -> nbformat.NotebookNode:
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    prompt = "```{{exercise-start}}\n:label: {}\n:nonumber:\n```\n**Exercise.**\n```{{exercise-end}}\n```"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        md("# 99. A tiny chapter"),
        code("import torch\nfrom roadmap_lib.exercises import check_close, check_function\n" + setup),
        md(prompt.format(EXERCISES[0])),
        code("def double(x):\n" + first),
        code("check_function(double, [((torch.tensor([1.0, 2.0]),), torch.tensor([2.0, 4.0]))])"),
        md(prompt.format(EXERCISES[1])),
        code("def mean(x):\n" + second),
        code("check_close(mean(torch.tensor([1.0, 2.0, 6.0])), 3.0)"),
    ]
    return nb


def test_a_class_is_graded_and_misbehaving_notebooks_are_stopped(tmp_path):
    subs, outside = tmp_path / "subs", tmp_path / "escape.txt"
    subs.mkdir()
    cases = {
        "alice": submission(*RIGHT),
        "bob": submission("    return 3 * x\n", '    raise NotImplementedError("write your solution here")\n'),
        "gina": submission('    raise NotImplementedError("write your solution here")\n', RIGHT[1]),
        "carol": submission(*RIGHT, setup="import os\nos._exit(1)\n"),
        "dave": submission(*RIGHT, setup="while True:\n    pass\n"),
        "eve": submission(*RIGHT, setup=textwrap.dedent("""\
            import socket
            try:
                socket.create_connection(("93.184.216.34", 80), timeout=1)
            except Exception:
                pass  # hiding the attempt does not help: it is logged
            """)),
        "frank": submission(*RIGHT, setup=f"open({str(outside)!r}, 'w').write('x')\n"),
    }
    for name, nb in cases.items():
        nbformat.write(nb, subs / f"{name}.ipynb")
    (subs / "broken.ipynb").write_text("{ not json")

    rows = grade.grade(subs, out=tmp_path / "out", cell_timeout=15, notebook_timeout=120, exercises=EXERCISES)
    assert len(rows) == len(cases) + 1
    with (tmp_path / "out" / "grades.csv").open() as f:
        table = {r["student"]: r for r in csv.DictReader(f)}
    assert list(table) == sorted([*cases, "broken"])

    def results(name):
        return [table[name][ex] for ex in EXERCISES]

    assert table["alice"]["status"] == "completed" and results("alice") == ["pass", "pass"]
    assert table["alice"]["score"] == "2/2"
    assert results("bob") == ["fail", "not attempted"] and table["bob"]["score"] == "0/2"
    assert "times 1.5" in table["bob"]["ex-99-double message"]  # the check's diagnosis is kept
    assert results("gina") == ["not attempted", "pass"]  # check_function's "not written yet" too
    assert table["carol"]["status"] == "stopped: its kernel died" and results("carol") == ["not run"] * 2
    assert table["dave"]["status"] == "stopped: a cell ran past 15 s"
    assert table["eve"]["status"].startswith("stopped: tried the network")
    assert "93.184.216.34" in table["eve"]["status"] and results("eve") == ["not run"] * 2
    assert table["frank"]["status"] == f"stopped: wrote outside its folder ({outside})"
    assert not outside.exists()
    assert table["broken"]["status"].startswith("unreadable notebook")
    report = (tmp_path / "out" / "report.html").read_text()
    assert "Most common mistakes" in report and "times 1.5" in report


def test_bad_requests_are_refused(tmp_path):
    with pytest.raises(grade.GradeError, match="folder of .ipynb files"):
        grade.grade(tmp_path)
    with pytest.raises(grade.GradeError, match=r"chapter must be one of .*04.*got '98'"):
        grade.chapter_exercises("98")
    assert grade.chapter_exercises("04")[0] == "ex-04-causal"


def test_the_sandbox_refuses_and_logs_writes_outside_the_folder(tmp_path):
    inside, log = tmp_path / "box", tmp_path / "log"
    inside.mkdir()
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from tools.sandbox import install
        install({str(inside)!r}, {str(log)!r})
        open({str(inside / 'ok.txt')!r}, 'w').write('fine')
        open({str(ROOT / 'README.md')!r}).read()  # reading is allowed
        try:
            open({str(tmp_path / 'no.txt')!r}, 'w')
        except PermissionError as e:
            print('refused:', e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "refused: this notebook may only write inside its own folder" in out.stdout
    assert (inside / "ok.txt").exists() and not (tmp_path / "no.txt").exists()
    assert log.read_text() == f"write\t{tmp_path / 'no.txt'}\n"
