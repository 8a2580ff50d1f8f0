"""Chapter 23's exercise checks: right answers pass, each declared mistake is named."""

import pytest
import torch

from roadmap_lib.chapters.ch23_long_context_rag import exercises as ex
from roadmap_lib.exercises import ExerciseError


def test_bm25_term():
    def right(tf, dl, avgdl, idf):
        return idf * tf * 2.5 / (tf + 1.5 * (0.25 + 0.75 * dl / avgdl))

    ex.check_bm25_term(right)
    students = {
        "length normalisation is missing": lambda tf, dl, avgdl, idf: idf * tf * 2.5 / (tf + 1.5),
        "(k1 + 1) factor": lambda tf, dl, avgdl, idf: idf * tf / (tf + 1.5 * (0.25 + 0.75 * dl / avgdl)),
        "plain tf·idf": lambda tf, dl, avgdl, idf: idf * tf,
        "inverted": lambda tf, dl, avgdl, idf: idf * tf * 2.5 / (tf + 1.5 * (0.25 + 0.75 * avgdl / dl)),
    }
    for words, fn in students.items():
        with pytest.raises(ExerciseError, match="likely mistake") as err:
            ex.check_bm25_term(fn)
        assert words in str(err.value)


def test_rrf_scores():
    def right(ranks):
        return torch.where(ranks > 0, 1 / (60 + ranks.double()), torch.zeros(())).sum(0)

    ex.check_rrf_scores(right)
    students = {
        "counted from 0": lambda r: torch.where(r > 0, 1 / (59 + r.double()), torch.zeros(())).sum(0),
        "k is missing": lambda r: torch.where(r > 0, 1 / r.double().clamp(min=1), torch.zeros(())).sum(0),
        "did not return": lambda r: (1 / (60 + r.double())).sum(0),
    }
    for words, fn in students.items():
        with pytest.raises(ExerciseError, match="likely mistake") as err:
            ex.check_rrf_scores(fn)
        assert words in str(err.value)


def test_long_measure(capsys):
    recorded = {"linear": {"2": {"beyond": 2.9}}, "ntk": {"2": {"beyond": 1.9}}}
    ex.check_long_measure({"linear": 2.9, "ntk": 1.9005}, recorded, "ntk")
    assert "right" in capsys.readouterr().out
    with pytest.raises(ExerciseError):
        ex.check_long_measure({"linear": 2.9}, recorded, "ntk")
    with pytest.raises(ExerciseError):
        ex.check_long_measure({"linear": 2.5, "ntk": 1.9}, recorded, "linear")


def test_key_found():
    def right(logits, ids, key_len):
        return (logits[:, -key_len:].argmax(-1) == ids[:, -key_len:]).all(1)

    ex.check_key_found(right)
    students = {
        "shifted by one": lambda lg, ids, k: (lg[:, -k:].argmax(-1) == ids[:, -k - 1:-1]).all(1),
        "*any* key character": lambda lg, ids, k: (lg[:, -k:].argmax(-1) == ids[:, -k:]).any(1),
        "first key_len positions": lambda lg, ids, k: (lg[:, :k].argmax(-1) == ids[:, 1:k + 1]).all(1),
    }
    for words, fn in students.items():
        with pytest.raises(ExerciseError, match="likely mistake") as err:
            ex.check_key_found(fn)
        assert words in str(err.value)
    with pytest.raises(ExerciseError):  # a mean over the key characters is not a found/not-found answer
        ex.check_key_found(lambda lg, ids, k: (lg[:, -k:].argmax(-1) == ids[:, -k:]).double().mean(1))
