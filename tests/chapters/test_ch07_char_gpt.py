"""Chapter 07's character-level GPT recipe: the shipped checkpoint loads and writes text; builds are
seeded and refuse bad names. (Its recorded loss is re-measured by tests/test_artifacts.py.)"""

import json

import pytest
import torch

from roadmap_lib.chapters.ch07_decoder_only import char_gpt as zoo
from roadmap_lib.checkpoint import CheckpointError
from roadmap_lib.generation import greedy

SHIPPED = [n for n in zoo.ENTRIES if (zoo.zoo_dir() / f"{n}.json").exists()]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_learnt_and_writes(name):
    model, vocab, info = zoo.load(name)
    recorded = info["eval"]["loss"]
    assert info["log"][-1]["step"] == info["steps"]
    assert recorded < 0.6 * info["log"][0]["loss"]  # it learned something
    ids = vocab.encode("The hacker ")[None]
    text = vocab.decode(greedy(model, ids, 20)[0])
    assert text.startswith("The hacker ") and len(text) == 31


def test_all_entries_are_shipped():
    assert SHIPPED == list(zoo.ENTRIES)


def test_build_smoke_and_bad_names(tmp_path):
    path = zoo.build("gpt-char-jargon", tmp_path, progress=False, max_steps=3)
    record = json.loads(path.read_text())
    assert record["steps"] == 3 and len(record["log"]) == 3
    model, vocab, _ = zoo.load("gpt-char-jargon", tmp_path)
    assert isinstance(model(torch.zeros(1, 4, dtype=torch.long)), torch.Tensor)
    with pytest.raises(ValueError, match="expected one of"):
        zoo.load("gpt-nope")
    # a corrupt weights file is reported as such
    (tmp_path / "gpt-char-jargon.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        zoo.load("gpt-char-jargon", tmp_path)
