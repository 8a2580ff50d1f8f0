"""Every artifact shipped in data/ is registered, recorded by name, and re-measured from its files.

This is the test behind `python -m roadmap_lib verify all`: for each registered artifact it
recomputes every recorded metric (evaluation losses, BLEU, fertility, a re-trained run of a sweep,
byte-identical task files) and compares it with the number in the shipped record.
"""

import json

import pytest

from roadmap_lib import DATA_DIR, zoo
from roadmap_lib.chapters import artifacts
from roadmap_lib.measure import cpu_threads

REGISTRY = artifacts()


@pytest.mark.parametrize("name", list(REGISTRY))
def test_artifact_remeasures_its_recorded_metrics(name):
    with cpu_threads(1):
        checks = zoo.verify(REGISTRY[name])
    bad = [str(c) for c in checks if not c.ok]
    assert not bad, f"{name}: " + "; ".join(bad)


def test_every_shipped_file_is_registered_once():
    registered = {f for a in REGISTRY.values() for f in a.files}
    shipped = {p.relative_to(DATA_DIR).as_posix() for p in DATA_DIR.rglob("*")
               if p.is_file() and p.suffix in (".json", ".safetensors", ".tsv")}
    assert shipped - registered == set(), "shipped but not registered (add it to an artifacts.py)"
    assert registered - shipped == set(), "registered but not shipped (run python -m roadmap_lib build)"


@pytest.mark.parametrize("name", list(REGISTRY))
def test_records_name_the_artifact_and_respect_the_cap(name):
    a = REGISTRY[name]
    for f in a.files:
        assert (DATA_DIR / f).stat().st_size <= a.max_bytes, f
        if f.endswith(".json") and not f.startswith("tokenizers/"):
            record = json.loads((DATA_DIR / f).read_text(encoding="utf-8"))
            if "command" in record:
                assert record["command"] == a.command, f
