"""roadmap_lib.tasks: the generated task files (translation grammar, acceptability, intruder)."""

import random

import pytest

from roadmap_lib.data import load_task, load_text
from roadmap_lib.tasks import ARTIFACT, _zetan_lexicon, build, corpus_sentences, translation_pair


def test_translation_task():
    rows = {s: load_task("translation", s) for s in ("train", "val", "test")}
    assert [len(r) for r in rows.values()] == [8000, 1000, 1000]
    srcs = [set(r["src"] for r in part) for part in rows.values()]
    assert not (srcs[0] & srcs[1]) and not (srcs[0] & srcs[2])  # no leakage
    # the grammar: verb last in Zetan with a tense suffix; same lexicon everywhere
    lex = _zetan_lexicon(random.Random(0))
    src, tgt = translation_pair(random.Random(1), lex)
    assert tgt.split()[-1][-2:] in ("ta", "ru")
    for row in rows["train"][:200]:
        assert row["tgt"].split()[-1][-2:] in ("ta", "ru")
        assert len(row["tgt"].split()) == len(row["src"].split())  # one Zetan word per English word


def test_acceptability_task():
    rows = load_task("acceptability", "train")
    originals = set(corpus_sentences(load_text()))
    assert len(rows) == 5600
    labels = [r["label"] for r in rows]
    assert 0.45 < labels.count("1") / len(labels) < 0.55
    for r in rows[:300]:
        i, j = int(r["swap_i"]), int(r["swap_j"])
        assert (r["label"] == "1") == (i == j == -1)
        w = r["text"].split()
        if r["label"] == "0":
            w[i], w[j] = w[j], w[i]
        assert " ".join(w) in originals  # undoing the swap gives back a corpus sentence
    with pytest.raises(FileNotFoundError, match="tasks available"):
        load_task("nope", "train")


def test_intruder_task_shares_the_acceptability_sentences():
    for split in ("train", "test"):
        intruder, accept = load_task("intruder", split), load_task("acceptability", split)
        assert len(intruder) == len(accept)
        labels = [r["label"] for r in intruder]
        assert 0.45 < labels.count("1") / len(labels) < 0.55
        for r, a in zip(intruder[:400], accept[:400]):
            words, original = r["text"].split(), a["text"].split()
            i, j = int(a["swap_i"]), int(a["swap_j"])
            if i >= 0:
                original[i], original[j] = original[j], original[i]
            k = int(r["position"])
            assert (r["label"] == "1") == (k == -1)
            if k == -1:
                assert words == original
                continue
            # exactly one word differs, and the file names the word that was there
            assert [m for m in range(len(words)) if words[m] != original[m]] == [k]
            assert r["original"] and r["original"] in original[k]


def test_build_is_deterministic_and_lists_its_files(tmp_path):
    a = build(tmp_path / "a")
    b = build(tmp_path / "b")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert sorted(p.relative_to(tmp_path / "a").as_posix() for p in a) == sorted(
        f.removeprefix("tasks/") for f in ARTIFACT.files)
