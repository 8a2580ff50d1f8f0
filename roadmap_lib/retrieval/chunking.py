"""Documents and chunks: the Jargon File's entries, and fixed-size word windows for long texts.

A glossary is already cut into natural documents: each entry starts with a line ``:headword: ...``
and runs to the next one. ``{braces}`` mark cross-references; we keep the words, drop the braces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ENTRY = re.compile(r"^:(?P<title>[^:\n]+(?::[^:\n]+)*?): ?(?P<head>.*)$", re.MULTILINE)
_END = "Part III. Appendices"


@dataclass(frozen=True)
class Document:
    doc_id: int
    title: str  # the headword
    text: str  # the entry's body on one line, braces removed

    def __str__(self) -> str:
        return f"{self.title}: {self.text}"


def jargon_entries(text: str, min_words: int = 1) -> list[Document]:
    """Every glossary entry of the Jargon File ``text`` with at least ``min_words`` words of body,
    numbered from 0 in file order."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected the Jargon File as a str, got {type(text).__name__}")
    end = text.find(_END)
    text = text if end < 0 else text[:end]
    starts = [m for m in _ENTRY.finditer(text) if not m.group("title").startswith(" ")]
    docs: list[Document] = []
    for m, nxt in zip(starts, [*starts[1:], None]):
        body = text[m.end(): nxt.start() if nxt else len(text)]
        body = " ".join(body.replace("{", "").replace("}", "").split())
        if len(body.split()) >= min_words:
            docs.append(Document(len(docs), m.group("title").strip(), body))
    if not docs:
        raise ValueError("text: found no ':headword:' entries; expected the Jargon File's glossary")
    return docs


def word_windows(text: str, size: int, overlap: int = 0) -> list[str]:
    """Cut ``text`` into windows of ``size`` words, consecutive windows sharing ``overlap`` words;
    the last window may be shorter. Every word is in at least one window."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size: expected an int >= 1, got {size!r}")
    if not isinstance(overlap, int) or not 0 <= overlap < size:
        raise ValueError(f"overlap: expected an int in [0, size={size}), got {overlap!r}")
    words = text.split()
    step = size - overlap
    out = []
    for start in range(0, max(len(words), 1), step):
        out.append(" ".join(words[start: start + size]))
        if start + size >= len(words):
            break
    return out
