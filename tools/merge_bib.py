"""Merge BibTeX fragments into book/references.bib, skipping keys it already has.

    python tools/merge_bib.py book/bib/13.bib [more.bib ...]

Keys are compared without regard to case (BibTeX and pybtex treat ``Vaswani2017`` and
``vaswani2017`` as one key). The bibliography is rewritten atomically: the new text goes to a
temporary file beside it, which replaces it only once complete, so an error never leaves half a
file. Once merged, delete the fragment.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from roadmap_lib.fileio import atomic_path

TARGET = Path(__file__).resolve().parent.parent / "book" / "references.bib"
ENTRY = re.compile(r"^@\w+\{([^,\s]+),.*?^\}\s*$", re.DOTALL | re.MULTILINE)
ENTRY_KEY = re.compile(r"^@\w+\{([^,\s]+),", re.MULTILINE)


def entries(path: Path) -> list[tuple[str, str]]:
    """``(key, text)`` of every entry of a fragment; an entry that does not close with a ``}`` at
    the start of a line is an error, not silently skipped."""
    text = Path(path).read_text(encoding="utf-8")
    found = [(m.group(1), m.group(0).strip()) for m in ENTRY.finditer(text)]
    starts = ENTRY_KEY.findall(text)
    if [key for key, _ in found] != starts:
        raise ValueError(f"{path}: {len(starts)} entries start ({', '.join(starts)}) but "
                         f"{len(found)} parse: every entry must end with a '}}' on its own line")
    return found


def merge(fragments: list[Path], target: Path = TARGET) -> list[str]:
    """Append the fragments' entries whose keys ``target`` lacks; return the keys added."""
    target = Path(target)
    text = target.read_text(encoding="utf-8")
    have = {key.lower() for key in ENTRY_KEY.findall(text)}
    added = []
    for path in fragments:
        for key, entry in entries(path):
            if key.lower() not in have:
                text = text.rstrip() + "\n\n" + entry + "\n"
                have.add(key.lower())
                added.append(key)
    if added:
        with atomic_path(target) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return added


def main(paths: list[str]) -> None:
    added = merge([Path(p) for p in paths])
    print(f"added {len(added)} entries: {', '.join(added)}")


if __name__ == "__main__":
    main(sys.argv[1:])
