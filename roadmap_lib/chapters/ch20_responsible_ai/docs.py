"""Documentation generated from the project's own records: model cards, datasheet rows, and an
energy/carbon estimate of the recorded build times.

Model cards (Mitchell et al., 2019) and datasheets (Gebru et al., 2021) are written here from what
the repository already records: each zoo checkpoint's JSON (description, config, evaluation, seed,
build command, build seconds) and ``data/DATASHEET.md`` (bytes, SHA-256, source and licence). The
energy estimate is ``seconds x power``, converted to kWh and to grams of CO2-equivalent with a
carbon intensity; both are *parameters*, never measurements of this machine.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from roadmap_lib import DATA_DIR
from roadmap_lib.zoo import Artifact, check, recorded_seconds


def datasheet_files(data_dir: Path | None = None) -> dict[str, dict]:
    """``{file: {"bytes", "sha256"}}`` from the table of ``data/DATASHEET.md``."""
    text = ((data_dir or DATA_DIR) / "DATASHEET.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| (\d+) \| `([0-9a-f]{64})` \|$", text, flags=re.MULTILINE)
    return {f: {"bytes": int(b), "sha256": h} for f, b, h in rows}


def build_records(data_dir: Path | None = None) -> list[dict]:
    """One row per JSON record in ``data/`` and ``data/zoo/`` that names its build command:
    ``{"file", "command", "seconds"}`` (seconds via :func:`roadmap_lib.zoo.recorded_seconds`,
    ``None`` when the record holds none)."""
    data_dir = data_dir or DATA_DIR
    rows = []
    for path in sorted([*data_dir.glob("*.json"), *data_dir.glob("*/*.json")]):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a file being rewritten right now: not a record yet
        if not isinstance(record, dict) or "command" not in record:
            continue
        rel = path.relative_to(data_dir).as_posix()
        probe = Artifact(rel, "20", "record", (rel,), build=lambda root: None, verify=lambda root: [check("", 0, 0, 0)])
        rows.append({"file": rel, "command": record["command"], "seconds": recorded_seconds(probe, data_dir)})
    return rows


@dataclass(frozen=True)
class EnergyAssumptions:
    """The parameters of the estimate. ``watts_per_core``: power drawn by one busy CPU core (with its
    share of memory and the rest of the machine); ``grams_co2_per_kwh``: carbon intensity of the
    electricity; ``pue``: the data centre's power usage effectiveness (1.0 for a laptop)."""

    watts_per_core: float = 10.0
    grams_co2_per_kwh: float = 400.0
    pue: float = 1.0

    def __post_init__(self):
        for name in ("watts_per_core", "grams_co2_per_kwh", "pue"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or v < 0 or (name == "pue" and v < 1):
                raise ValueError(f"{name}: expected a number >= {1 if name == 'pue' else 0}, got {v!r}")


def energy(seconds: float, assumptions: EnergyAssumptions = EnergyAssumptions(), cores: int = 1) -> dict:
    """``{"kwh", "grams_co2"}`` of ``seconds`` of ``cores`` busy cores under ``assumptions``."""
    if seconds < 0 or cores < 1:
        raise ValueError(f"seconds, cores: expected seconds >= 0 and cores >= 1, got {seconds}, {cores}")
    kwh = seconds * cores * assumptions.watts_per_core * assumptions.pue / 3.6e6
    return {"kwh": kwh, "grams_co2": kwh * assumptions.grams_co2_per_kwh}


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def model_card(name: str, data_dir: Path | None = None,
               assumptions: EnergyAssumptions = EnergyAssumptions()) -> str:
    """A Markdown model card for the zoo checkpoint ``name``, from its record and the datasheet."""
    data_dir = data_dir or DATA_DIR
    record = json.loads((data_dir / "zoo" / f"{name}.json").read_text(encoding="utf-8"))
    sheet = datasheet_files(data_dir)
    seconds = recorded_seconds(Artifact(name, "20", "record", (f"zoo/{name}.json",), build=lambda r: None,
                                        verify=lambda r: []), data_dir)
    config = ", ".join(f"{k}={_fmt(v)}" for k, v in record.get("model_config", {}).items())
    ev = record.get("eval", {})
    ev_text = ", ".join(f"{k}={_fmt(v)}" for k, v in ev.items()) if isinstance(ev, dict) else str(ev)
    files = [f"zoo/{name}.json", f"zoo/{name}.safetensors"]
    lines = [f"### Model card: `{name}`", "",
             f"- **Model details**: {record.get('description', 'n/a')}. Config: {config}.",
             "- **Intended use**: teaching (this book's chapters); not for any decision about people.",
             ("- **Training data**: the Jargon File (`jargon.txt`, see the datasheet), a glossary of hacker "
              "slang (1975-2003); its word associations become the model's (chapter 20 measures some)."),
             f"- **Evaluation** (recorded at build): {ev_text or 'n/a'}.",
             (f"- **Reproduce**: `{record.get('command', 'n/a')}` (seed {record.get('seed', 0)}, "
              f"torch {record.get('torch', 'n/a')})."),
             "- **Files**: " + "; ".join(f"`{f}` {sheet[f]['bytes']} bytes, sha256 `{sheet[f]['sha256'][:12]}…`"
                                        if f in sheet else f"`{f}` (not in the datasheet)" for f in files) + "."]
    if seconds is not None:
        e = energy(seconds, assumptions)
        lines.append(f"- **Compute**: {seconds:.0f} s of one CPU core at build; about {e['kwh'] * 1000:.2g} Wh "
                     f"and {e['grams_co2']:.2g} g CO2e at {assumptions.watts_per_core:g} W per core and "
                     f"{assumptions.grams_co2_per_kwh:g} g/kWh (assumptions, not measurements).")
    lines.append("- **Limitations**: a toy-sized model; it produces fluent-looking nonsense and "
                 "repeats its corpus' associations (measured in chapter 20).")
    return "\n".join(lines)


__all__ = ["EnergyAssumptions", "build_records", "datasheet_files", "energy", "model_card"]
