"""The book on a machine without Triton (macOS, Windows, Linux on ARM), played here by hiding the
installed Triton from every import (tools/import_blocker.py through tools/offline_site).

- every module of roadmap_lib imports; calling a kernel raises a clear TritonUnavailableError;
- the kernel test modules skip with the reason, and the PyTorch reference tests still run;
- chapter 13 runs top to bottom: the three cells marked ``# needs Triton`` print "Skipped" and the
  reason, every other cell runs as usual.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import roadmap_lib.kernels._notebook as nb_skip
from roadmap_lib.kernels import HAVE_TRITON, kernel_source

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "notebooks" / "13_flashattention_kernels.py"


def _blocked_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "PYTEST_ADDOPTS")}
    env["ROADMAP_BLOCK_IMPORTS"] = "triton"
    env["ROADMAP_OFFLINE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tools" / "offline_site"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(code_or_args, timeout=600):
    args = code_or_args if isinstance(code_or_args, list) else ["-c", textwrap.dedent(code_or_args)]
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=_blocked_env(), capture_output=True,
                          text=True, timeout=timeout)


# ---- the pieces, in this process -------------------------------------------------------------


@pytest.mark.skipif(not HAVE_TRITON, reason="compares with the kernels imported through Triton")
def test_kernel_source_is_the_compiled_kernels_source():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    import roadmap_lib.kernels.flash as flash
    import roadmap_lib.kernels.fused_softmax as fused

    assert kernel_source("fused_softmax", "_softmax_fwd") == inspect.getsource(fused._softmax_fwd.fn)
    for name in ("_attn_fwd", "_attn_bwd_dkdv", "_attn_bwd_dq"):
        assert kernel_source("flash", name) == inspect.getsource(getattr(flash, name).fn)


def test_kernel_source_refuses_unknown_names():
    with pytest.raises(ValueError, match=r"module must be one of .*'flash'.*got 'flsh'"):
        kernel_source("flsh", "_attn_fwd")
    with pytest.raises(ValueError, match=r"function must be a top-level function of flash.py.*got '_nope'"):
        kernel_source("flash", "_nope")


def test_marked_cells_become_a_note_only_without_triton(monkeypatch):
    cell = ["\n", "# needs Triton\n", "y = softmax(x)\n"]
    other = ["# a comment\n", "y = 1\n"]
    monkeypatch.setattr(nb_skip, "HAVE_TRITON", True)
    assert nb_skip.skip_triton_cell(cell) == cell
    monkeypatch.setattr(nb_skip, "HAVE_TRITON", False)
    monkeypatch.setattr(nb_skip, "MISSING_TRITON", "no triton on this test machine")
    replaced = "".join(nb_skip.skip_triton_cell(cell))
    assert "softmax" not in replaced and nb_skip.SKIPPED in replaced and "no triton on this test machine" in replaced
    assert nb_skip.skip_triton_cell(other) == other


# ---- a machine without Triton, in subprocesses -------------------------------------------------


@pytest.mark.kernels
def test_every_library_module_imports_without_triton():
    result = _run("""
        import importlib, pkgutil, importlib.util
        assert importlib.util.find_spec("triton") is None
        import roadmap_lib
        names = [m.name for m in pkgutil.walk_packages(roadmap_lib.__path__, "roadmap_lib.")]
        for name in names:
            importlib.import_module(name)
        from roadmap_lib.kernels import HAVE_TRITON, TritonUnavailableError, flash_attention
        assert not HAVE_TRITON
        try:
            flash_attention(None, None, None)
        except TritonUnavailableError as error:
            print("ERROR:", error)
        print("IMPORTED", len(names))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = int(result.stdout.split("IMPORTED")[1])
    assert imported > 60, result.stdout
    assert "ERROR: roadmap_lib.kernels.flash_attention needs Triton" in result.stdout
    assert "wheels for Linux on x86-64 only" in result.stdout


@pytest.mark.kernels
def test_kernel_tests_skip_with_the_reason_and_nothing_else_skips():
    modules = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_kernels_*.py")
                     if p.name != Path(__file__).name)
    result = _run(["-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-rs", "-q", *modules])
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-2000:]
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    triton_modules = {"tests/test_kernels_flash.py", "tests/test_kernels_fused_softmax.py"}
    assert {line.split("] ")[1].split(":")[0] for line in skipped} == triton_modules, skipped
    assert all("Triton cannot be imported" in line for line in skipped), skipped
    passed = int(out.split(" passed")[0].split()[-1])
    assert passed >= 10, out[-2000:]  # the PyTorch reference tests still ran


@pytest.mark.kernels
def test_chapter_13_runs_without_triton_and_skips_only_the_marked_cells(tmp_path):
    executed = tmp_path / "13.ipynb"
    result = _run(f"""
        import jupytext, nbformat
        from nbclient import NotebookClient
        nb = jupytext.read({str(CHAPTER)!r})
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={{"metadata": {{"path": {str(CHAPTER.parent)!r}}}}}).execute()
        nbformat.write(nb, {str(executed)!r})
    """)
    assert result.returncode == 0, result.stderr[-4000:]
    cells = [c for c in json.loads(executed.read_text())["cells"] if c["cell_type"] == "code"]

    def text(cell):
        return "".join("".join(o.get("text", "")) for o in cell["outputs"])

    marked = [c for c in cells if "".join(c["source"]).lstrip().startswith("# needs Triton")]
    assert len(marked) == 3
    for cell in marked:
        assert text(cell).startswith(nb_skip.SKIPPED) and "Triton cannot be imported" in text(cell)
    others = [c for c in cells if c not in marked]
    assert not any(nb_skip.SKIPPED in text(c) for c in others)
    assert not any(o["output_type"] == "error" for c in cells for o in c["outputs"])
    assert "Without Triton:" in text(cells[0])
    # the kernels' source is still printed for the reader
    assert any("@triton.jit" in text(c) for c in others)
