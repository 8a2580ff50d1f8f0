"""Rebuild data/jargon.txt, the book's English corpus, from Debian's `jargon-text` package.

The Jargon File (version 4.4.7, Eric S. Raymond and others) is in the public domain. Debian ships it
as /usr/share/doc/jargon-text/jargon.txt.gz. This script keeps its prose and drops the ASCII-art
tables, trailing blanks and runs of blank lines, so that the corpus is ordinary paragraphs of text.

    apt-get download jargon-text && dpkg -x jargon-text_*.deb pkg
    python tools/build_corpus.py pkg/usr/share/doc/jargon-text/jargon.txt.gz data/jargon.txt
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import sys
import tempfile
from pathlib import Path

BOX = re.compile(r"[\u2500-\u257f]")  # box-drawing characters used by the tables


def clean(text: str) -> str:
    text = text.replace("\u00a0", " ")  # the file uses no-break spaces in headings
    start = text.find("\nChapter 1. Hacker Slang")  # skip the front matter and contents
    if start < 0:
        raise ValueError("src: this is not the Jargon File 4.4.7 text (no 'Chapter 1. Hacker Slang')")
    lines = []
    for line in text[start:].splitlines():
        if BOX.search(line):
            continue
        line = line.rstrip()
        lines.append(line[3:] if line.startswith("   ") else line)  # the file indents by 3
    out = "\n".join(lines)
    out = re.sub(r"\n{3,}", "\n\n", out).strip() + "\n"
    return out


def main(src: str, dst: str) -> None:
    raw = gzip.open(src, "rt", encoding="utf-8").read()
    text = clean(raw)
    dst_path = Path(dst)
    # Write to a temporary file first so a failure never leaves a half-written corpus.
    fd, tmp = tempfile.mkstemp(dir=dst_path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst_path)
    except BaseException:
        os.unlink(tmp)
        raise
    data = dst_path.read_bytes()
    print(f"{dst}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
