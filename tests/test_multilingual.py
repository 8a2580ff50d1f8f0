"""roadmap_lib.multilingual: format stripping, catalogue reading on a hand-written .po, premiums."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roadmap_lib import multilingual as M
from roadmap_lib.tokenizers import CharTokenizer


@pytest.mark.parametrize("text, want", [
    ("copying %(n)s files to {dest}&#8230;", "copying files to …"),
    ("%d found", "found"),
    ("100%% done in %5.2f s", "100 done in s"),
    ("{0} and {name!r:>10}", "and"),
    ("  many\n  spaces\t", "many spaces"),
    ("", ""),
])
def test_strip_format_cases(text, want):
    assert M.strip_format(text) == want


@given(st.text())
def test_strip_format_is_idempotent_and_leaves_no_codes(text):
    once = M.strip_format(text)
    assert M.strip_format(once) == once or "&" in once  # an unescaped '&...;' may unescape again
    assert "%s" not in once.replace("%%", "")


def test_strip_format_type_error():
    with pytest.raises(TypeError, match="text: expected a str, got int"):
        M.strip_format(3)


PO = '''msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"

#: sphinx/builders/html.py:10
msgid "copying %s files"
msgstr "{copy}"

#: sphinx/ext/autodoc.py:3
msgid "Other Parameters"
msgstr "{other}"

#: sphinx/cmd/build.py:3
msgid "only here"
msgstr "{only}"

#, fuzzy
#: sphinx/cmd/build.py:4
msgid "fuzzy one here"
msgstr "{fuzzy}"
'''


def _locale(tmp_path: Path) -> Path:
    for lang, words in {"fr": ("copie de fichiers", "Autres paramètres", "seulement", "flou"),
                        "ja": ("ファイルをコピー", "その他のパラメータ", "", "あいまい")}.items():
        d = tmp_path / lang / "LC_MESSAGES"
        d.mkdir(parents=True)
        copy, other, only, fuzzy = words
        (d / "sphinx.po").write_text(PO.format(copy=copy, other=other, only=only, fuzzy=fuzzy), encoding="utf-8")
    return tmp_path


def test_read_catalogue_skips_fuzzy_and_untranslated(tmp_path):
    cat = M.read_catalogue(_locale(tmp_path) / "ja" / "LC_MESSAGES" / "sphinx.po")
    assert cat == {"copying %s files": {"text": "ファイルをコピー", "source": "builders"},
                   "Other Parameters": {"text": "その他のパラメータ", "source": "ext"}}


def test_parallel_sample_keeps_messages_translated_everywhere(tmp_path):
    rows = M.parallel_sample(["fr", "ja"], _locale(tmp_path))
    assert rows == [{"source": "ext", "en": "Other Parameters", "fr": "Autres paramètres", "ja": "その他のパラメータ"},
                    {"source": "builders", "en": "copying files", "fr": "copie de fichiers", "ja": "ファイルをコピー"}]


def test_parallel_sample_errors(tmp_path):
    with pytest.raises(ValueError, match="languages: expected a non-empty list"):
        M.parallel_sample("fr", tmp_path)
    with pytest.raises(ValueError, match="'en' is the source language"):
        M.parallel_sample(["en", "fr"], tmp_path)
    with pytest.raises(FileNotFoundError, match="path: no catalogue at"):
        M.parallel_sample(["de"], tmp_path)


ROWS = [{"en": "ab", "xx": "abcd"}, {"en": "abcdef", "xx": "ab"}]


def test_premium_is_a_ratio_of_totals():
    tok = CharTokenizer().train("abcdef")
    # characters as tokens: en 2 + 6 = 8, xx 4 + 2 = 6 -> 0.75 (the mean of ratios would be 1.17)
    assert M.token_premium(tok, ROWS, ["en", "xx"]) == {"en": 1.0, "xx": 0.75}
    assert M.token_counts(tok, ROWS, ["xx"]) == {"xx": [4, 2]}
    f = M.fertility(tok, ROWS, ["en"])["en"]
    assert (f["tokens"], f["chars"], f["words"], f["tokens_per_message"]) == (8, 8, 2, 4.0)


def test_premium_errors():
    tok = CharTokenizer().train("abcdef")
    with pytest.raises(ValueError, match=r"languages: \['de'\] not in the sample"):
        M.token_premium(tok, ROWS, ["de"])
    with pytest.raises(ValueError, match="sample: expected a non-empty list"):
        M.token_counts(tok, [], ["en"])


def test_split_is_seeded_disjoint_and_complete():
    rows = [{"en": str(i)} for i in range(20)]
    a, b = M.split(rows, 0.3, seed=1)
    assert (a, b) == M.split(rows, 0.3, seed=1) and len(b) == 6
    assert sorted(r["en"] for r in a + b) == sorted(r["en"] for r in rows)
    assert M.split(rows, 0.3, seed=2) != (a, b)
    with pytest.raises(ValueError, match="test_fraction: expected a number in \\(0, 1\\), got 1.5"):
        M.split(rows, 1.5, 0)
