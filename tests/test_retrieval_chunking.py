"""Jargon File entries and word windows."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roadmap_lib.retrieval import jargon_entries, word_windows

TEXT = """Chapter 1. Intro

some prose

:foo: /foo/, n.

[common] A {metasyntactic variable}. See {bar}.

:bar baz: n.

1. Second. 2. Third.

                          Part III. Appendices

:not an entry: n.

Appendix text.
"""


def test_entries_are_parsed_with_braces_removed():
    docs = jargon_entries(TEXT)
    assert [(d.doc_id, d.title) for d in docs] == [(0, "foo"), (1, "bar baz")]
    assert docs[0].text == "[common] A metasyntactic variable. See bar."
    assert str(docs[1]) == "bar baz: 1. Second. 2. Third."


def test_the_real_file():
    from roadmap_lib.data import load_text

    docs = jargon_entries(load_text())
    assert len(docs) > 2000 and docs[-1].title == "zorkmid"
    assert all("{" not in d.text for d in docs)


def test_errors():
    with pytest.raises(ValueError, match="headword"):
        jargon_entries("no entries here")
    with pytest.raises(TypeError, match="text"):
        jargon_entries(b"bytes")
    with pytest.raises(ValueError, match="overlap"):
        word_windows("a b c", 2, 2)
    with pytest.raises(ValueError, match="size"):
        word_windows("a b c", 0)


@given(n=st.integers(0, 60), size=st.integers(1, 10), data=st.data())
def test_windows_cover_every_word_with_the_given_overlap(n, size, data):
    overlap = data.draw(st.integers(0, size - 1))
    words = [f"w{i}" for i in range(n)]
    wins = [w.split() for w in word_windows(" ".join(words), size, overlap)]
    assert all(len(w) <= size for w in wins)
    assert sorted({x for w in wins for x in w}, key=lambda s: int(s[1:])) == words
    for a, b in itertools.pairwise(wins):
        assert a[len(a) - overlap:] == b[:overlap]
