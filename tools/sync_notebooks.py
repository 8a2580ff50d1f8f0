"""Pair every chapter's jupytext source (notebooks/NN_slug.py) with its .ipynb.

    python tools/sync_notebooks.py                      # all chapters
    python tools/sync_notebooks.py notebooks/01_*.py    # some

The .py percent file is the source and is committed; the .ipynb is generated (git ignores it) so a
reader opens an ordinary notebook in JupyterLab. `jupytext --sync` keeps the pair equal, taking
the newer side when both exist, so edits made in JupyterLab are kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jupytext.cli import jupytext

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        print(f"no such notebook source: {', '.join(missing)}", file=sys.stderr)
        return 2
    if not files:
        print("no notebooks/NN_slug.py found", file=sys.stderr)
        return 0
    jupytext(["--sync", "--quiet", *map(str, files)])
    print(f"paired {len(files)} notebook(s): " + ", ".join(f.stem for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
