"""Read a kernel's source from its file, without importing Triton.

Chapter 13 prints the Triton kernels so that a reader can go through them line by line. Reading the
file with :mod:`ast` (instead of ``inspect.getsource`` on the compiled kernel) works on every
machine, also where Triton cannot be installed and the kernel modules cannot be imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def kernel_source(module: str, function: str) -> str:
    """The source text of ``function`` (decorators included) in this package's ``module``.py.

    >>> kernel_source("fused_softmax", "_softmax_fwd").startswith("@triton.jit")
    True
    """
    path = _HERE / f"{module}.py"
    if not path.is_file():
        known = sorted(p.stem for p in _HERE.glob("*.py") if not p.stem.startswith("__"))
        raise ValueError(f"module must be one of {known}, got {module!r}")
    text = path.read_text()
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == function:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            lines = text.splitlines(keepends=True)[start - 1 : node.end_lineno]
            return "".join(lines)
    names = sorted(n.name for n in ast.parse(text).body if isinstance(n, (ast.FunctionDef, ast.ClassDef)))
    raise ValueError(f"function must be a top-level function of {module}.py, one of {names}; got {function!r}")
