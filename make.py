"""The book's commands on every operating system: the one definition of what `make` runs.

    python make.py lab      # Linux and macOS (or `make lab`)
    py make.py lab          # Windows, where there is usually no make
    py make.py test         # every test stage, in order
    py make.py --help       # all the stages

Only the standard library is used here, so it runs before anything is installed. The Makefile is a
thin wrapper: each of its targets runs `python make.py <target>`, and tests/test_make_py.py checks
that the two list the same stages, so they cannot drift apart.

Settings come from the environment (the Makefile exports its variables of the same names) or, as
with make, from NAME=value arguments after the stage (`py make.py test-notebooks NB=notebooks/01_why_transformers.py`):

    VENV=.venv            where the environment lives
    PIP_ARGS="..."        extra pip arguments for the install
    TORCH=cpu             install PyTorch's CPU build from PyTorch's own index (Linux; see README)
    NB="notebooks/01_why_transformers.py ..."   which chapters test-notebooks runs (default: all)
    CELL_TIMEOUT=300      seconds a notebook cell may run under nbval
    NB_THREADS=1          threads per notebook kernel
    NB_WORKERS=2          chapters run at the same time by test-notebooks (one kernel each)
    WORKERS=2             parallel workers for the unit tests
    SUBMISSIONS=folder    the student notebooks that `grade` runs (CHAPTER=NN if it cannot tell)
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MIN_PYTHON = (3, 10)

# The stages, in the order `test` runs the test-* ones. Each is a function below with the same name
# (dashes as underscores) and a one-line help, which is also the Makefile's `make help`.
STAGES: dict[str, str] = {
    "env": "create .venv if needed and install the pinned versions (again only when they change)",
    "sync": "pair every notebooks/NN_slug.py with its .ipynb (jupytext)",
    "lab": "create .venv if needed, pair the notebooks, open JupyterLab on notebooks/",
    "test": "create or update .venv, then run every test (unit, kernels, notebooks, student, book)",
    "test-unit": "the unit and reference tests, in parallel workers",
    "test-kernels": "the Triton kernel tests, through Triton's interpreter on a CPU",
    "test-notebooks": "run chapters as tests (NB=notebooks/01_why_transformers.py for one)",
    "test-student": "build the student notebooks and check that no solution leaked",
    "test-book": "build the static site from the executed chapters and open a page in a browser",
    "book": "build the executed static site (stale chapters run first, two at a time: no change, no work)",
    "student": "write student/NN_slug.ipynb: solutions stubbed, outputs cleared",
    "grade": "grade a class's student notebooks (SUBMISSIONS=folder, CHAPTER=NN optional): CSV and report",
    "clean": "remove what the commands generate (build, student notebooks, .ipynb pairs)",
}
TEST_STAGES = ["test-unit", "test-kernels", "test-notebooks", "test-student", "test-book"]

# Every command below runs with these: reproducible hashing, no display, no Hugging Face downloads.
FIXED_ENV = {
    "PYTHONHASHSEED": "0",
    "MPLBACKEND": "Agg",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
SETTINGS = ("VENV", "PIP_ARGS", "TORCH", "NB", "CELL_TIMEOUT", "NB_THREADS", "NB_WORKERS", "WORKERS",
            "SUBMISSIONS", "CHAPTER")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


class StageError(RuntimeError):
    """A command of a stage failed; the message says which."""


def setting(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def venv_dir() -> Path:
    return ROOT / setting("VENV", ".venv")


def venv_python() -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    return venv_dir() / scripts / ("python.exe" if os.name == "nt" else "python")


def run(args: list[str | Path], env: dict[str, str] | None = None) -> None:
    """Run one command from the repository root; raise StageError if it fails."""
    args = [str(a) for a in args]
    print("+", " ".join(shlex.quote(a) for a in args), flush=True)
    full_env = {**os.environ, **FIXED_ENV, **(env or {})}
    code = subprocess.call(args, cwd=ROOT, env=full_env)
    if code != 0:
        raise StageError(f"command failed with exit status {code}: {' '.join(args)}")


def py(*args: str | Path, env: dict[str, str] | None = None) -> None:
    run([venv_python(), *args], env)


def has_nvidia_gpu() -> bool:
    return Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None


# ---- the stages --------------------------------------------------------------------------------


def env() -> None:
    if sys.version_info < MIN_PYTHON:
        raise StageError("Python >= %d.%d is needed, this is %d.%d; run this script with a newer Python"
                         % (*MIN_PYTHON, *sys.version_info[:2]))
    stamp = venv_dir() / ".installed"
    inputs = [ROOT / "pyproject.toml", ROOT / "constraints.txt"]
    if stamp.exists() and all(p.stat().st_mtime <= stamp.stat().st_mtime for p in inputs):
        return
    if not venv_python().exists():
        run([sys.executable, "-m", "venv", venv_dir()])
    pip = [venv_python(), "-m", "pip", "install", "--disable-pip-version-check", "-q",
           *shlex.split(setting("PIP_ARGS", ""))]
    torch_choice = setting("TORCH", "")
    if torch_choice not in ("", "cpu", "default"):
        raise StageError(f"TORCH must be 'cpu' or unset, got {torch_choice!r}")
    if torch_choice == "cpu":
        pin = next(line.strip() for line in (ROOT / "constraints.txt").read_text().splitlines()
                   if line.startswith("torch=="))
        run([*pip, pin, "--index-url", TORCH_CPU_INDEX])
    elif platform.system() == "Linux" and not has_nvidia_gpu():
        print("note: no NVIDIA GPU here, and PyPI's Linux torch wheel is a CUDA build of several GB. "
              "For the CPU build, stop and run again with TORCH=cpu (see README, Quick start).",
              flush=True)
    run([*pip, "-c", "constraints.txt", "-e", ".[test,book]"])
    stamp.touch()


def sync() -> None:
    env()
    py("tools/sync_notebooks.py")


def lab() -> None:
    sync()
    py("-m", "jupyter", "lab", "--notebook-dir=notebooks")


def test() -> None:
    env()
    for stage in TEST_STAGES:
        STAGE_FUNCTIONS[stage]()


def test_unit() -> None:
    sync()  # a working copy's notebooks/*.ipynb may be older than their .py (after a pull): pair them first
    py("-m", "pytest", "-n", setting("WORKERS", "2"), "-m", "not kernels and not book and not student",
       "--timeout=900", "tests", env={"OMP_NUM_THREADS": "1"})


def test_kernels() -> None:
    env()
    py("-m", "pytest", "-m", "kernels", "--timeout=900", "tests", env={"TRITON_INTERPRET": "1"})


def all_notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def test_notebooks() -> None:
    """A passing notebook leaves its executed copy in _build/executed (tools/nbreport.py), which the
    book test builds from. Old copies go first (all of them for the full set, else those of NB), so
    that a failed or partial run never leaves an earlier run's outputs behind; tools/build_book.py
    also refuses copies older than their chapter, the library or data/."""
    env()
    chosen = [(ROOT / p).resolve() for p in shlex.split(setting("NB", ""))] or all_notebooks()
    missing = [str(p) for p in chosen if not p.is_file()]
    if missing:
        raise StageError(f"NB names no chapter source: {', '.join(missing)}")
    executed = ROOT / "_build" / "executed"
    if set(chosen) == set(all_notebooks()):
        shutil.rmtree(executed, ignore_errors=True)
    else:
        for p in chosen:
            (executed / p.with_suffix(".ipynb").name).unlink(missing_ok=True)
    py("tools/sync_notebooks.py", *[p.relative_to(ROOT) for p in chosen])
    site = str(ROOT / "tools" / "offline_site")
    workers = min(int(setting("NB_WORKERS", "2")), len(chosen))
    # every cell of a chapter runs on one worker, in order; each worker keeps one kernel at a time
    parallel = ["-n", str(workers), "--dist", "loadfile"] if workers > 1 else ["-p", "no:xdist"]
    py("-m", "pytest", *parallel, "-p", "tools.nbreport", "--nbval-lax", "--nbval-current-env",
       f"--nbval-cell-timeout={setting('CELL_TIMEOUT', '300')}", "-o", "testpaths=", "-o", "addopts=",
       *[p.with_suffix(".ipynb").relative_to(ROOT) for p in chosen],
       env={"PYTHONPATH": os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")])),
            "ROADMAP_OFFLINE": "1", "OMP_NUM_THREADS": setting("NB_THREADS", "1")})


def student() -> None:
    env()
    py("tools/make_student.py", "notebooks", "student")


def test_student() -> None:
    student()
    py("-m", "pytest", "-m", "student", "-o", "addopts=", "tests/test_student.py")


def test_book() -> None:
    env()
    py("-m", "pytest", "-m", "book", "-o", "addopts=", "tests/test_book.py")


def book() -> None:
    """Run the chapters whose executed copy is missing or stale (in parallel, as the notebook test
    does), then build the site from the executed copies: with nothing changed, nothing runs."""
    env()
    executed = ROOT / "_build" / "executed"
    listed = subprocess.run([str(venv_python()), "tools/build_book.py", "--stale", str(executed)],
                            cwd=ROOT, capture_output=True, text=True)
    if listed.returncode:
        raise StageError(f"could not list the stale chapters: {listed.stderr.strip()}")
    stale = listed.stdout.split()
    if stale:
        print(f"{len(stale)} chapter(s) to run first: {' '.join(stale)}", flush=True)
        os.environ["NB"] = " ".join(stale)
        test_notebooks()
    else:
        print("every chapter's executed copy is current: nothing to run", flush=True)
    py("tools/build_book.py", "--from-executed", executed)


def grade() -> None:
    env()
    folder = setting("SUBMISSIONS", "")
    if not folder:
        raise StageError("grade needs SUBMISSIONS=folder (a folder of students' .ipynb files)")
    chapter = setting("CHAPTER", "")
    py("tools/grade.py", folder, *(["--chapter", chapter] if chapter else []),
       "--timeout", setting("CELL_TIMEOUT", "300"))


def clean() -> None:
    for name in ("_build", "student", ".jupyter_cache", ".pytest_cache"):
        shutil.rmtree(ROOT / name, ignore_errors=True)
    for p in (ROOT / "notebooks").glob("*.ipynb"):
        p.unlink()


STAGE_FUNCTIONS = {name: globals()[name.replace("-", "_")] for name in STAGES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The book's commands (the same as the Makefile's targets).",
        epilog="\n".join(f"  {name:15s} {text}" for name, text in STAGES.items()))
    parser.add_argument("stage", choices=list(STAGES), metavar="STAGE", help="one of the stages below")
    parser.add_argument("settings", nargs="*", metavar="NAME=value", help="settings, as with make")
    args = parser.parse_args(argv)
    stage = args.stage
    for item in args.settings:
        name, sep, value = item.partition("=")
        if not sep or name not in SETTINGS:
            parser.error(f"settings are NAME=value with NAME one of {', '.join(SETTINGS)}; got {item!r}")
        os.environ[name] = value
    try:
        STAGE_FUNCTIONS[stage]()
    except StageError as error:
        print(f"make.py {stage}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
