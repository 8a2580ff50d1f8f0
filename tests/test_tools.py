"""tools/merge_bib.py: new keys are added once, known keys are skipped, and a failed write leaves
the bibliography as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import merge_bib

ROOT = Path(__file__).resolve().parents[1]

REFERENCES = """@article{vaswani2017attention,
  title = {Attention Is All You Need},
  year = {2017}
}
"""
FRAGMENT = """@inproceedings{clark2020electra,
  title = {{ELECTRA}: Pre-training Text Encoders as Discriminators Rather Than Generators},
  year = {2020}
}

@article{Vaswani2017Attention,
  title = {Attention Is All You Need (again, other case)},
  year = {2017}
}
"""


@pytest.fixture
def bib(tmp_path):
    target = tmp_path / "references.bib"
    target.write_text(REFERENCES, encoding="utf-8")
    fragment = tmp_path / "13.bib"
    fragment.write_text(FRAGMENT, encoding="utf-8")
    return target, fragment


def test_new_keys_are_added_once_and_known_keys_skipped(bib):
    target, fragment = bib
    assert merge_bib.merge([fragment, fragment], target) == ["clark2020electra"]
    text = target.read_text(encoding="utf-8")
    assert text.startswith(REFERENCES.rstrip())
    assert text.count("@inproceedings{clark2020electra,") == 1
    assert "other case" not in text  # keys compare without case, as in BibTeX
    assert merge_bib.merge([fragment], target) == []
    assert target.read_text(encoding="utf-8") == text


def test_a_failed_write_leaves_the_bibliography_intact(bib, monkeypatch):
    target, fragment = bib
    write_text = Path.write_text

    def half_then_fail(self, data, *args, **kwargs):
        write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        merge_bib.merge([fragment], target)
    monkeypatch.undo()
    assert target.read_text(encoding="utf-8") == REFERENCES
    assert sorted(p.name for p in target.parent.iterdir()) == ["13.bib", "references.bib"]


def test_an_entry_that_does_not_parse_is_an_error(bib):
    target, fragment = bib
    unclosed = "@misc{a,\n  title = {A}}\n\n@misc{b,\n  title = {B}\n}\n"  # a's } ends a line
    fragment.write_text(unclosed, encoding="utf-8")
    with pytest.raises(ValueError, match=r"2 entries start \(a, b\) but 1 parse"):
        merge_bib.merge([fragment], target)
    assert target.read_text(encoding="utf-8") == REFERENCES


def test_chapter_map_page_agrees_with_the_table_of_contents():
    from tools import chapter_map

    assert chapter_map.check() == [], "book/chapter_map.md is out of date: python tools/chapter_map.py --check"


def test_launch_note_goes_after_the_title_in_both_formats(tmp_path):
    import json

    import jupytext

    from tools.build_book import add_launch_note

    source = ROOT / "notebooks" / "01_why_transformers.py"
    py_copy = tmp_path / source.name
    py_copy.write_text(source.read_text())
    add_launch_note(py_copy)
    before, after = jupytext.read(source), jupytext.read(py_copy)
    assert len(after.cells) == len(before.cells) + 1
    assert after.cells[0].source == before.cells[0].source
    assert after.cells[1].cell_type == "markdown"
    assert "notebooks/01_why_transformers.ipynb" in after.cells[1].source
    assert [c.source for c in after.cells[2:]] == [c.source for c in before.cells[1:]]

    ipynb = tmp_path / "01_why_transformers.ipynb"
    jupytext.write(before, ipynb)
    add_launch_note(ipynb)
    cells = json.loads(ipynb.read_text())["cells"]
    assert "Run this chapter on your machine" in "".join(cells[1]["source"])
    assert len(cells) == len(before.cells) + 1
