"""data/model_timeline.csv loads, every row has a source, malformed files are reported clearly."""

import pytest

from roadmap_lib.chapters.ch01_why_transformers.timeline import COLUMNS, load_timeline


def test_shipped_timeline():
    entries = load_timeline()
    assert len(entries) >= 15
    assert all(e.source for e in entries)
    assert [e.year for e in entries] == sorted(e.year for e in entries)
    names = {e.model for e in entries}
    for required in ("BERT-Large", "GPT-1", "GPT-2", "GPT-3", "GPT-4", "T5-11B", "PaLM", "LLaMA-65B"):
        assert required in names


@pytest.mark.parametrize("row, message", [
    ("X,2020,Org,decoder-only,ten,,src,", "parameters must be a number"),
    ("X,2020,Org,decoder-only,-5,,src,", "parameters must be positive"),
    ("X,twenty,Org,decoder-only,5,,src,", "year must be an integer"),
    ("X,2020,Org,decoder-only,5,,,", "needs a source"),
])
def test_malformed_rows(tmp_path, row, message):
    path = tmp_path / "t.csv"
    path.write_text(",".join(COLUMNS) + "\n" + row + "\n")
    with pytest.raises(ValueError, match=message):
        load_timeline(path)


def test_wrong_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("model,year\nX,2020\n")
    with pytest.raises(ValueError, match="expected columns"):
        load_timeline(path)


def test_format_count_uses_the_largest_unit():
    from roadmap_lib.chapters.ch01_why_transformers.timeline import format_count

    assert [format_count(n) for n in (117e6, 6.7e9, 15.6e12, 1.4e12, 540e9, 999)] == \
        ["117M", "6.7B", "15.6T", "1.4T", "540B", "999"]
    import pytest

    with pytest.raises(ValueError, match="non-negative count, got -1"):
        format_count(-1)
