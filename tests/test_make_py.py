"""make.py, the cross-platform entry point: the Makefile and it list the same stages (the Makefile
only calls it), and every command the README's quick start shows exists."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import make

ROOT = Path(__file__).resolve().parents[1]


def makefile_stages() -> list[str]:
    text = (ROOT / "Makefile").read_text()
    match = re.search(r"^STAGES\s*:=\s*(.+)$", text, re.M)
    assert match, "the Makefile has no STAGES := ... line"
    return match.group(1).split()


def test_makefile_and_make_py_list_the_same_stages_and_make_only_delegates():
    assert makefile_stages() == list(make.STAGES)
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(STAGES\):\n\t(.+)$", text, re.M)
    assert recipe and recipe.group(1).strip() == "@$(PYTHON) make.py $@"
    # no target of the Makefile defines a command of its own besides help and the stages
    targets = set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.M))
    assert targets <= {"help"}, targets
    assert set(make.TEST_STAGES) <= set(make.STAGES)
    assert all(callable(make.STAGE_FUNCTIONS[s]) for s in make.STAGES)


def test_make_help_lists_every_stage():
    out = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60).stdout
    for stage in make.STAGES:
        assert re.search(rf"^\s+{re.escape(stage)}\s", out, re.M), (stage, out)


def test_an_unknown_stage_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        make.main(["tset"])
    err = capsys.readouterr().err
    assert "invalid choice: 'tset'" in err and "test-notebooks" in err


def test_settings_can_follow_the_stage_as_with_make(monkeypatch, capsys):
    seen = {}
    monkeypatch.setitem(make.STAGE_FUNCTIONS, "sync", lambda: seen.update(NB=os.environ.get("NB")))
    monkeypatch.delenv("NB", raising=False)
    assert make.main(["sync", "NB=notebooks/01_why_transformers.py"]) == 0
    assert seen == {"NB": "notebooks/01_why_transformers.py"}
    with pytest.raises(SystemExit):
        make.main(["sync", "NBB=x"])
    assert "NAME one of VENV, PIP_ARGS" in capsys.readouterr().err


def test_a_bad_chapter_list_is_refused(monkeypatch):
    monkeypatch.setenv("NB", "notebooks/99_nothing.py")
    monkeypatch.setattr(make, "env", lambda: None)
    with pytest.raises(make.StageError, match=r"NB names no chapter source: .*99_nothing.py"):
        make.test_notebooks()


def test_a_bad_torch_choice_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH", "gpu")
    monkeypatch.setenv("VENV", str(tmp_path / "v"))
    monkeypatch.setattr(make, "run", lambda *a, **k: None)
    with pytest.raises(make.StageError, match=r"TORCH must be 'cpu' or unset, got 'gpu'"):
        make.env()
    assert not (tmp_path / "v" / ".installed").exists()


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|powershell)\n(.*?)```", section, re.S)
    assert len(blocks) == 3, "one block each for Linux, macOS and Windows"
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_every_quick_start_command_exists():
    commands = quick_start_commands()
    assert commands
    for command in commands:
        words = shlex.split(command)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value prefixes
            name = words.pop(0).split("=")[0]
            assert name in make.__doc__, f"{command}: make.py does not read {name}"
        program, *args = words
        if program == "make":
            assert args and all(a in makefile_stages() for a in args), command
        elif program in ("py", "python", "python3"):
            assert args[0] == "make.py" and args[1] in make.STAGES, command
        else:
            pytest.fail(f"the quick start shows a command this test does not know: {command}")
    assert any(c.startswith("py make.py") for c in commands)
    assert any(c.startswith("make") for c in commands)


def test_make_py_runs_with_the_standard_library_only():
    """It must work before anything is installed: import it with site-packages switched off."""
    result = subprocess.run([sys.executable, "-S", "-c", "import make, sys; print(len(make.STAGES))"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(make.STAGES)


def test_the_site_workflow_builds_with_make_book_and_publishes_its_output():
    import yaml

    from tools import build_book

    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    steps = flow["jobs"]["build"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert any(r.split()[-2:] == ["make", "book"] for r in runs), runs
    uploaded = next(s["with"]["path"] for s in steps if "upload-pages-artifact" in s.get("uses", ""))
    assert ROOT / uploaded == build_book.BUILD / "book-static" / "_build" / "html"
    assert "book" in make.STAGES
