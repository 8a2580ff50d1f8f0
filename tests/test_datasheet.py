"""data/DATASHEET.md lists every file in data/ with the right size, checksum, source and licence."""

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SHEET = DATA / "DATASHEET.md"
ROW = re.compile(r"^\| `([^`]+)` \| (\d+) \| `([0-9a-f]{64})` \|$", re.MULTILINE)


def listed() -> dict[str, tuple[int, str]]:
    return {m.group(1): (int(m.group(2)), m.group(3)) for m in ROW.finditer(SHEET.read_text())}


def test_every_file_is_listed_with_size_and_checksum():
    rows = listed()
    files = sorted(p.relative_to(DATA).as_posix() for p in DATA.rglob("*")
                   if p.is_file() and p.name != "DATASHEET.md" and "__pycache__" not in p.parts)
    missing = [f for f in files if f not in rows]
    assert not missing, f"files in data/ not in DATASHEET.md: {missing} (python tools/datasheet.py data/FILE)"
    for name, (size, digest) in rows.items():
        path = DATA / name
        assert path.exists(), f"DATASHEET.md lists {name}, which is not in data/"
        data = path.read_bytes()
        assert len(data) == size, f"{name}: DATASHEET.md says {size} bytes, the file has {len(data)}"
        assert hashlib.sha256(data).hexdigest() == digest, f"{name}: checksum differs from DATASHEET.md"


def test_every_file_has_source_and_licence():
    text = SHEET.read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    described = {}
    for section in sections[1:]:
        title = section.splitlines()[0]
        for name in re.findall(r"`([^`]+)`", title):
            described[name] = section
    for name in listed():
        # A section may describe a file or the folder it sits in (e.g. `zoo/`).
        section = described.get(name) or next(
            (s for key, s in described.items() if key.endswith("/") and name.startswith(key)), None)
        assert section, f"{name}: no '## `{name}`' section in DATASHEET.md"
        assert "**Source**" in section and "**Licence**" in section, f"{name}: section needs Source and Licence"


def test_data_stays_small():
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 50 * 2**20, f"data/ holds {total / 2**20:.1f} MiB; the budget is 50 MiB"
