"""Every `assert` in a chapter can fail (CONTRIBUTING.md, "Evidence").

A chapter proves its claims with `assert` statements, so an assert that cannot fail proves nothing
and reads as if it did. This test parses every `notebooks/NN_*.py` with `ast` (jupytext keeps magics
such as `%matplotlib inline` as comments, so the files are plain Python) and flags two shapes that
no run can ever trip:

- an assert whose test reads only literals: no name, attribute, call or subscript, so its value is
  fixed when the line is written (`assert True`, `assert 1 < 2`, `assert "x"`);
- an assert whose test is a display that is always true whatever it holds: a non-empty tuple, list,
  set or dict, or a lambda (`assert (x == 1, "message")` is the classic slip: a non-empty tuple).

It cannot see the subtler ways an assert fails to test anything (one implied by the line before,
one on a formula's own output, a threshold far from the measured value); those are for review.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))

#: Nodes that read a value which exists only when the code runs.
_READS = (ast.Name, ast.Attribute, ast.Call, ast.Subscript)
#: Displays whose truth does not depend on their contents once they are non-empty.
_ALWAYS_TRUE = (ast.Tuple, ast.List, ast.Set, ast.Dict)


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    source: str
    why: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: `{self.source}` ({self.why})"


def _reads_something(node: ast.AST) -> bool:
    return any(isinstance(child, _READS) for child in ast.walk(node))


def _always_true(node: ast.expr) -> bool:
    if isinstance(node, ast.Lambda):
        return True
    if isinstance(node, ast.Dict):
        return bool(node.keys)
    return isinstance(node, _ALWAYS_TRUE) and bool(node.elts)


def assert_findings(source: str, file: str = "<string>") -> list[Finding]:
    """The asserts in ``source`` that cannot fail, in line order."""
    tree = ast.parse(source, filename=file)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        text = ast.get_source_segment(source, node) or ast.unparse(node)
        text = " ".join(text.split())
        if _always_true(node.test):
            found.append(Finding(file, node.lineno, text, "a non-empty display or a lambda is always true"))
        elif not _reads_something(node.test):
            found.append(Finding(file, node.lineno, text, "reads only literals"))
    return sorted(found, key=lambda f: f.line)


# ------------------------------------------------------------------------------ the checker itself

@pytest.mark.parametrize("snippet", [
    "assert 3 > 2",
    "assert (1, 2)",
    "assert True",
    "assert 1 < 2",
    'assert "x"',
    "assert -1",
    "assert not 0",
    "assert [1, 2] == [1, 2]",
    "assert 0.1 + 0.2 > 0.3, 'float rounding'",
    "assert (x == 1, 'x must be one')",
    "assert [x]",
    "assert {'k': x}",
    "assert lambda: x > 1",
    "assert ()",  # always false: no run decides it either
    "def f():\n    assert 2 ** 10 == 1024\n",
])
def test_checker_flags_asserts_that_cannot_fail(snippet):
    found = assert_findings(snippet)
    assert len(found) == 1, f"{snippet!r} should be flagged once, got {found}"


@pytest.mark.parametrize("snippet", [
    "assert x > 2",
    "assert f() == 3",
    "assert model.loss < 1.5",
    "assert scores[0] > 0.5",
    "assert abs(a - b) < 1e-6, f'a={a}, b={b}'",
    "assert torch.allclose(ours, ref, atol=1e-5)",
    "assert not failed",
    "assert x, (1, 2)",  # the message may be anything
])
def test_checker_passes_asserts_that_read_the_run(snippet):
    assert assert_findings(snippet) == []


def test_checker_reports_file_line_and_source():
    source = "x = 1\nassert x == 1\n\nassert   3 >\\\n 2, 'msg'\n"
    (finding,) = assert_findings(source, "notebooks/99_demo.py")
    assert (finding.file, finding.line) == ("notebooks/99_demo.py", 4)
    assert finding.source == "assert 3 >\\ 2, 'msg'"
    assert str(finding).startswith("notebooks/99_demo.py:4: `assert 3 >")


def test_jupytext_magics_are_comments():
    source = "# %%\n# %matplotlib inline\nimport math\n\n# %%\nassert math.pi > 3\n"
    assert assert_findings(source) == []


# ------------------------------------------------------------------------------- the chapters

def test_there_are_chapters_to_check():
    assert CHAPTERS, "no notebooks/NN_*.py found"


@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_assert_can_fail(py):
    found = assert_findings(py.read_text(encoding="utf-8"), str(py.relative_to(ROOT)))
    assert not found, ("asserts that no run can trip (CONTRIBUTING.md, 'Evidence'):\n"
                       + "\n".join(f"  {f}" for f in found))
