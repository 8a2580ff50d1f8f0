"""The size and sha256 rows of data/DATASHEET.md.

    python tools/datasheet.py data/jargon.txt data/model_timeline.csv   # print rows for new files
    python tools/datasheet.py --update                                 # rewrite every listed row

Run ``--update`` after ``python -m roadmap_lib build NAME`` has replaced shipped files: it recomputes
the size and checksum of every file the datasheet lists and rewrites the file atomically.
"""

import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SHEET = DATA / "DATASHEET.md"
ROW = re.compile(r"^\| `([^`]+)` \| (\d+) \| `([0-9a-f]{64})` \|$", re.MULTILINE)


def describe(path: Path) -> tuple[int, str]:
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def row(rel: str) -> str:
    size, digest = describe(DATA / rel)
    return f"| `{rel}` | {size} | `{digest}` |"


def update(sheet: Path = SHEET) -> list[str]:
    """Rewrite every row of ``sheet`` from the files; return the names whose row changed."""
    from roadmap_lib.fileio import atomic_write_text

    text = sheet.read_text(encoding="utf-8")
    changed = []

    def fresh(m: re.Match) -> str:
        new = row(m.group(1))
        if new != m.group(0):
            changed.append(m.group(1))
        return new

    atomic_write_text(sheet, ROW.sub(fresh, text))
    return changed


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if args else 2)
    if args == ["--update"]:
        print("updated:", ", ".join(update()) or "nothing")
    else:
        missing = [a for a in args if not (DATA / Path(a).as_posix().removeprefix("data/")).is_file()]
        if missing:
            sys.exit(f"no such file in data/: {', '.join(missing)} (give paths like data/NAME or NAME)")
        for name in args:
            print(row(Path(name).as_posix().removeprefix("data/")))
