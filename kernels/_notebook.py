"""Chapter 13 on a machine without Triton: skip the cells that run kernels, with a visible note.

A notebook cell whose first line is the comment ``# needs Triton`` runs the Triton kernels. After
:func:`skip_cells_without_triton` (called once, in the chapter's first cell), IPython replaces such a
cell, where Triton cannot be imported, with a line that prints why it was skipped; everywhere else
the cell runs unchanged. The rest of the chapter (online softmax, tiled reference, IO model, the
kernels' source) runs on every machine.
"""

from __future__ import annotations

from ._triton_env import HAVE_TRITON, MISSING_TRITON

#: The first line that marks a cell as needing Triton.
MARKER = "# needs Triton"

#: What a skipped cell prints (the reason follows on the next line).
SKIPPED = "Skipped: this cell runs the Triton kernels."


def skip_triton_cell(lines: list[str]) -> list[str]:
    """An IPython input transformer: a marked cell becomes a print of the reason, others pass."""
    first = next((line.strip() for line in lines if line.strip()), "")
    if HAVE_TRITON or first != MARKER:
        return lines
    return [f"print({SKIPPED!r})\n", f"print({MISSING_TRITON!r})\n"]


def skip_cells_without_triton() -> bool:
    """Register :func:`skip_triton_cell` with the running IPython; return whether Triton is here.

    Outside IPython (a plain script) nothing is registered and the return value tells the caller.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return HAVE_TRITON
    shell = get_ipython()
    if shell is not None and not HAVE_TRITON:
        transformers = shell.input_transformers_cleanup
        if skip_triton_cell not in transformers:
            transformers.append(skip_triton_cell)
    return HAVE_TRITON
