"""Atomic writes: the target appears whole or not at all."""

import os

import pytest

from roadmap_lib.fileio import atomic_path, atomic_write_text


def test_write_replaces_the_target_whole(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "first\n")
    atomic_write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600), "the file gets the usual mode, not mkstemp's"


def test_a_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
