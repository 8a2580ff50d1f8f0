"""Grade a class's submitted student notebooks for one chapter.

    python tools/grade.py SUBMISSIONS [--chapter 04] [--out DIR] [--timeout 300]
    make grade SUBMISSIONS=folder          # or: py make.py grade SUBMISSIONS=folder

``SUBMISSIONS`` is a folder of ``.ipynb`` files, one per student (the file name, without
``.ipynb``, is the student's name in the report). Each is run from the top in a fresh kernel,
alone, in a copy of its own in a temporary folder, with the offline guard and the sandbox of
``tools/sandbox.py`` (writes outside that folder and network attempts are refused and logged), a
time limit per cell and for the whole notebook. A notebook that crashes its kernel, hangs, tries
the network or writes outside its folder is stopped there and reported; the grader itself never
goes down with it.

For every exercise of the chapter (``ex-NN-name`` labels, read from the chapter's source so a
submission cannot drop one), the result is:

* ``pass``: every code cell of the exercise ran and a check printed "Correct";
* ``fail``: a cell of the exercise raised; the message is the check's diagnosis (or the error);
* ``not attempted``: the solution cell still raises ``NotImplementedError``;
* ``missing``: the submission has no such exercise; ``not run``: the notebook was stopped first.

Writes ``grades.csv`` (one row per student: status, then a result and a message column per
exercise, then the score) and ``report.html`` (the table and the class's most common mistakes)
into ``--out`` (default ``_build/grades``).
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABEL = re.compile(r":label:\s*(ex-(\d\d)-[\w-]+)")
PASS, FAIL, NOT_ATTEMPTED, MISSING, NOT_RUN = "pass", "fail", "not attempted", "missing", "not run"
STOPPED_BY = {"write": "wrote outside its folder", "network": "tried the network"}


class GradeError(ValueError):
    """The grading request itself is wrong (no submissions, unknown chapter, ...)."""


def chapter_exercises(chapter: str) -> list[str]:
    """The exercise labels of chapter ``NN``, in order, from ``notebooks/NN_*.py``."""
    sources = sorted((ROOT / "notebooks").glob(f"{chapter}_*.py"))
    if len(sources) != 1:
        known = sorted(p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
        raise GradeError(f"chapter must be one of {', '.join(known)}; got {chapter!r}")
    return list(dict.fromkeys(label for label, _ in LABEL.findall(sources[0].read_text())))


def exercise_blocks(cells: list[dict]) -> dict[str, list[int]]:
    """Label -> indices of the code cells from that exercise's prompt to the next prompt."""
    blocks: dict[str, list[int]] = {}
    current = None
    for i, cell in enumerate(cells):
        source = "".join(cell.get("source", ""))
        if cell["cell_type"] == "markdown":
            match = LABEL.search(source) if "{exercise-start}" in source else None
            if match:
                current = match.group(1)
                blocks[current] = []
            continue
        if current is not None and cell["cell_type"] == "code":
            blocks[current].append(i)
    return blocks


# ---- running one notebook (in a child process: `grade.py --run-one NB OUT`) -------------------


def _kernel_env(folder: Path, log: Path) -> dict[str, str]:
    env = dict(os.environ)
    site = str(ROOT / "tools" / "offline_site")
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [site, env.get("PYTHONPATH")])),
        "ROADMAP_OFFLINE": "1", "ROADMAP_SANDBOX": str(folder), "ROADMAP_SANDBOX_LOG": str(log),
        "HOME": str(folder), "TMPDIR": str(folder / "tmp"), "MPLCONFIGDIR": str(folder / "mpl"),
        "IPYTHONDIR": str(folder / "ipython"), "TRITON_CACHE_DIR": str(folder / "triton"),
        "HF_HOME": str(folder / "hf"), "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
    })
    for sub in ("tmp", "mpl", "ipython", "triton", "hf"):
        (folder / sub).mkdir(exist_ok=True)
    return env


def run_one(notebook: Path, out: Path, cell_timeout: int) -> None:
    """Execute ``notebook`` cell by cell; write {cells: [...], stopped: reason|None} to ``out``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    folder = notebook.parent
    log = folder.parent / "sandbox.log"
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(folder)}})
    results: list[dict] = [{"ran": False} for _ in nb.cells]
    stopped = None
    env = _kernel_env(folder, log)
    os.environ.update(env)  # this runner process only lives for this one notebook
    try:
        with client.setup_kernel(env=env):
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                try:
                    client.execute_cell(cell, i)
                except CellTimeoutError:
                    stopped = f"a cell ran past {cell_timeout} s"
                except DeadKernelError:
                    stopped = "its kernel died"
                except CellExecutionError:
                    pass
                outputs = cell.get("outputs", [])
                error = next((o for o in outputs if o.get("output_type") == "error"), None)
                text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
                results[i] = {"ran": stopped is None, "error": error and {"ename": error["ename"],
                              "evalue": error["evalue"]}, "text": text[-4000:]}
                logged = log.read_text().splitlines() if log.exists() else []
                if logged and stopped is None:
                    kind, what = logged[0].split("\t", 1)
                    stopped = f"{STOPPED_BY.get(kind, kind)} ({what})"
                if stopped:
                    break
    except DeadKernelError:
        stopped = stopped or "its kernel died"
    out.write_text(json.dumps({"cells": results, "stopped": stopped}))


# ---- grading a class ---------------------------------------------------------------------------


def _exercise_result(block: list[int], cells: list[dict]) -> tuple[str, str]:
    ran = [cells[i] for i in block]
    for cell in ran:
        if not cell.get("ran"):
            return NOT_RUN, ""
        error = cell.get("error")
        if error:
            if error["ename"] == "NotImplementedError" or "(it raised NotImplementedError)" in error["evalue"]:
                return NOT_ATTEMPTED, "the solution cell still raises NotImplementedError"
            message = error["evalue"].strip() or error["ename"]
            if error["ename"] not in ("ExerciseError", "AssertionError"):
                message = f"{error['ename']}: {message}"
            return FAIL, message
    if not any("Correct" in cell.get("text", "") for cell in ran):
        return FAIL, "no check reported 'Correct'"
    return PASS, ""


def grade_one(submission: Path, exercises: list[str], work: Path, cell_timeout: int,
              notebook_timeout: int) -> dict:
    """Run one submission in its own folder and child process; return its row."""
    row = {"student": submission.stem}
    folder = work / submission.stem / "notebook"
    folder.mkdir(parents=True)
    target = folder / submission.name
    shutil.copy2(submission, target)
    try:
        cells = json.loads(target.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError) as error:
        row["status"] = f"unreadable notebook ({type(error).__name__})"
        row.update({ex: (NOT_RUN, "") for ex in exercises})
        return row
    blocks = exercise_blocks(cells)
    out = work / submission.stem / "result.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--run-one", str(target), str(out),
               "--timeout", str(cell_timeout)]
    process = subprocess.Popen(command, cwd=folder, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = process.communicate(timeout=notebook_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the runner and the kernel it started
        process.communicate()
        stderr = None
    if stderr is None:
        status, result = f"stopped: ran past the {notebook_timeout} s limit", None
    elif not out.exists():
        last = (stderr or "").strip().splitlines()[-1:] or ["no message"]
        status, result = f"crashed: {last[0][:200]}", None
    else:
        result = json.loads(out.read_text())
        status = f"stopped: {result['stopped']}" if result["stopped"] else "completed"
    row["status"] = status
    for ex in exercises:
        if ex not in blocks:
            row[ex] = (MISSING, "the submission has no such exercise")
        elif result is None:
            row[ex] = (NOT_RUN, "")
        else:
            row[ex] = _exercise_result(blocks[ex], result["cells"])
    return row


def write_reports(rows: list[dict], exercises: list[str], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = out / "grades.csv", out / "report.html"
    header = ["student", "status"] + [c for ex in exercises for c in (ex, f"{ex} message")] + ["score"]
    tmp = csv_path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            score = sum(row[ex][0] == PASS for ex in exercises)
            writer.writerow([row["student"], row["status"]]
                            + [v for ex in exercises for v in row[ex]] + [f"{score}/{len(exercises)}"])
    tmp.replace(csv_path)
    mistakes = Counter((ex, row[ex][1].splitlines()[0][:160]) for row in rows for ex in exercises
                       if row[ex][0] == FAIL)
    esc = html.escape
    table = "".join(
        f"<tr><td>{esc(r['student'])}</td><td>{esc(r['status'])}</td>"
        + "".join(f"<td class='{r[ex][0].replace(' ', '-')}' title='{esc(r[ex][1])}'>{esc(r[ex][0])}</td>"
                  for ex in exercises) + "</tr>" for r in rows)
    common = "".join(f"<li><b>{esc(ex)}</b> ({n} student{'s' * (n > 1)}): {esc(msg)}</li>"
                     for (ex, msg), n in mistakes.most_common(10))
    passed = {ex: sum(r[ex][0] == PASS for r in rows) for ex in exercises}
    page = f"""<!doctype html><meta charset="utf-8"><title>Grades</title>
<style>td,th{{border:1px solid #ccc;padding:4px}} .pass{{background:#dfd}} .fail{{background:#fdd}}</style>
<h1>Grades: {len(rows)} submissions</h1>
<p>Passed per exercise: {esc(', '.join(f'{ex} {n}/{len(rows)}' for ex, n in passed.items()))}</p>
<h2>Most common mistakes</h2><ol>{common or '<li>none</li>'}</ol>
<h2>Every submission</h2><table><tr><th>student</th><th>status</th>
{''.join(f'<th>{esc(ex)}</th>' for ex in exercises)}</tr>{table}</table>
"""
    html_path.write_text(page, encoding="utf-8")
    return csv_path, html_path


def grade(submissions: Path, chapter: str | None = None, out: Path | None = None,
          cell_timeout: int = 300, notebook_timeout: int = 900,
          exercises: list[str] | None = None) -> list[dict]:
    """Grade every ``.ipynb`` in ``submissions``; ``exercises`` overrides the chapter's list."""
    files = sorted(submissions.glob("*.ipynb")) if submissions.is_dir() else []
    if not files:
        raise GradeError(f"SUBMISSIONS must be a folder of .ipynb files; {submissions} has none")
    if exercises is None and chapter is None:
        found = {m[1] for f in files for m in LABEL.findall(f.read_text(encoding="utf-8", errors="replace"))}
        if len(found) != 1:
            raise GradeError(f"cannot tell the chapter from the submissions (labels of chapters "
                             f"{sorted(found) or 'none'}); pass --chapter NN")
        chapter = found.pop()
    exercises = exercises or chapter_exercises(chapter)
    rows = []
    with tempfile.TemporaryDirectory(prefix="grade-") as work:
        for f in files:
            print(f"grading {f.name} ...", flush=True)
            rows.append(grade_one(f, exercises, Path(work), cell_timeout, notebook_timeout))
            print(f"  {rows[-1]['status']}: "
                  + ", ".join(f"{ex} {rows[-1][ex][0]}" for ex in exercises), flush=True)
    csv_path, html_path = write_reports(rows, exercises, out or ROOT / "_build" / "grades")
    print(f"wrote {csv_path} and {html_path}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", type=Path, nargs="?")
    parser.add_argument("--chapter", help="NN; by default read from the submissions' exercise labels")
    parser.add_argument("--out", type=Path, help="where grades.csv and report.html go")
    parser.add_argument("--timeout", type=int, default=300, help="seconds a cell may run")
    parser.add_argument("--notebook-timeout", type=int, default=900, help="seconds a notebook may run")
    parser.add_argument("--run-one", nargs=2, type=Path, metavar=("NB", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_one:
        run_one(*args.run_one, cell_timeout=args.timeout)
        return 0
    if args.submissions is None:
        parser.error("SUBMISSIONS (a folder of .ipynb files) is required")
    try:
        grade(args.submissions, args.chapter, args.out, args.timeout, args.notebook_timeout)
    except GradeError as error:
        print(f"grade.py: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
