"""The model timeline of chapter 01: loading ``data/model_timeline.csv`` and drawing it.

Each row is one published model: name, year, organisation, architecture, parameters, training
tokens (empty where the authors did not report them) and the source the numbers come from.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from roadmap_lib import data_path

COLUMNS = ["model", "year", "organisation", "architecture", "parameters", "tokens", "source", "note"]


@dataclass(frozen=True)
class ModelEntry:
    model: str
    year: int
    organisation: str
    architecture: str
    parameters: float | None  # None: not disclosed
    tokens: float | None      # training tokens; None: not reported
    source: str
    note: str = ""

    @property
    def tokens_per_parameter(self) -> float | None:
        if self.parameters and self.tokens:
            return self.tokens / self.parameters
        return None


def load_timeline(path: str | Path | None = None) -> list[ModelEntry]:
    """Read the timeline CSV; a malformed row raises ``ValueError`` naming the line and the field."""
    path = Path(path) if path is not None else data_path("model_timeline.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != COLUMNS:
            raise ValueError(f"{path}: expected columns {COLUMNS}, got {reader.fieldnames}")
        entries = []
        for line, row in enumerate(reader, start=2):
            def number(field):
                text = row[field].strip()
                if not text:
                    return None
                try:
                    value = float(text)
                except ValueError:
                    raise ValueError(f"{path}, line {line}: {field} must be a number or empty, got {text!r}") from None
                if value <= 0:
                    raise ValueError(f"{path}, line {line}: {field} must be positive, got {text!r}")
                return value

            if not row["source"].strip():
                raise ValueError(f"{path}, line {line}: every row needs a source ({row['model']!r} has none)")
            try:
                year = int(row["year"])
            except ValueError:
                raise ValueError(f"{path}, line {line}: year must be an integer, got {row['year']!r}") from None
            entries.append(ModelEntry(row["model"], year, row["organisation"], row["architecture"],
                                      number("parameters"), number("tokens"), row["source"], row["note"]))
    return entries


def format_count(n: float) -> str:
    """A parameter or token count in the unit a reader expects: ``117M``, ``6.7B``, ``15.6T``."""
    if n < 0:
        raise ValueError(f"n must be a non-negative count, got {n}")
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.3g}"


def plot_timeline(entries: list[ModelEntry], ax=None):
    """Parameters against year on a log axis, one labelled point per model with a known size."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 5))
    colours = {"encoder-only": "tab:green", "encoder-decoder": "tab:purple", "decoder-only": "tab:blue",
               "decoder-only mixture of experts": "tab:red"}
    seen = set()
    sized = sorted((e for e in entries if e.parameters is not None), key=lambda e: (e.year, e.parameters))
    for e in sized:
        same_year = [o for o in sized if o.year == e.year]
        i = same_year.index(e)
        x = e.year + 0.15 * (i - (len(same_year) - 1) / 2)  # spread models of one year apart
        colour = colours.get(e.architecture, "tab:gray")
        label = e.architecture if e.architecture not in seen else None
        seen.add(e.architecture)
        ax.scatter(x, e.parameters, color=colour, s=40, label=label, zorder=3)
        above = i % 2 == 0  # neighbours of one year alternate above and below their point
        left = e.year == sized[0].year  # the first year's labels go left, clear of the next year's
        ax.annotate(e.model, (x, e.parameters), textcoords="offset points",
                    xytext=(-5 if left else 5, 4 if above else -10), ha="right" if left else "left", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlim(2015.8, 2024.9)
    ax.set_xlabel("year of publication")
    ax.set_ylabel("parameters (log scale)")
    ax.set_title("Published transformer models: size by year")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_tokens_per_parameter(entries: list[ModelEntry], ax=None):
    """Training tokens per parameter for the models that report both, with Chinchilla's ≈20 line."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    known = [e for e in entries if e.tokens_per_parameter is not None]
    ax.bar([e.model for e in known], [e.tokens_per_parameter for e in known], color="tab:blue")
    ax.axhline(20, color="tab:red", linestyle="--", label="≈20 tokens per parameter (Chinchilla)")
    ax.set_yscale("log")
    ax.set_ylabel("training tokens per parameter")
    ax.set_title("How much data each model saw for its size")
    ax.tick_params(axis="x", rotation=60, labelsize=8)
    ax.legend()
    return ax
