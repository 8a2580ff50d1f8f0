"""Merge BibTeX fragments into book/references.bib, skipping keys it already has.

    python tools/merge_bib.py book/bib/13.bib [more.bib ...]
"""

import re
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "book" / "references.bib"
ENTRY = re.compile(r"^@\w+\{([^,\s]+),.*?^\}\s*$", re.S | re.M)


def main(paths: list[str]) -> None:
    text = TARGET.read_text(encoding="utf-8")
    have = set(ENTRY_KEY.findall(text))
    added = []
    for path in paths:
        for m in ENTRY.finditer(Path(path).read_text(encoding="utf-8")):
            if m.group(1) not in have:
                text = text.rstrip() + "\n\n" + m.group(0).strip() + "\n"
                have.add(m.group(1))
                added.append(m.group(1))
    TARGET.write_text(text, encoding="utf-8")
    print(f"added {len(added)} entries: {', '.join(added)}")


ENTRY_KEY = re.compile(r"^@\w+\{([^,\s]+),", re.M)

if __name__ == "__main__":
    main(sys.argv[1:])
