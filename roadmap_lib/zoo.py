"""The zoo: every file the project ships in ``data/`` that a command made, in one registry.

Checkpoints, results files, trained tokenizers and generated task files are *artifacts*. Each is
registered once (``roadmap_lib.chapters.artifacts()`` lists them all) with

- ``files``: the paths it writes, relative to ``data/``;
- ``build(root)``: a seeded function that writes those files under ``root`` (a staging folder laid
  out like ``data/``);
- ``verify(root)``: a function that re-measures the artifact's recorded metrics from the files
  under ``root`` and returns one :class:`Check` per metric.

``python -m roadmap_lib list|build|verify NAME|all`` is the one command for all of them. A build
writes into a staging folder inside ``data/``, checks every file against the size cap, and only
then moves the files over the shipped ones (``os.replace``): a failed or oversized build leaves
``data/`` as it was.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import DATA_DIR, set_seed
from .checkpoint import load_model, read_model_metadata
from .data import CharVocab
from .models import GPT, GPTConfig

#: The largest file a build may ship (DESIGN.md: each checkpoint at most 5 MB).
MAX_BYTES = 5 * 2**20


@dataclass(frozen=True)
class Check:
    """One re-measured metric of an artifact: ``got`` now, ``recorded`` in the shipped files."""

    metric: str
    got: float
    recorded: float
    tol: float

    @property
    def ok(self) -> bool:
        return math.isfinite(self.got) and abs(self.got - self.recorded) <= self.tol

    def __str__(self) -> str:
        mark = "ok" if self.ok else "MISMATCH"
        return f"{self.metric}: {self.got:.6g} (recorded {self.recorded:.6g}, tolerance {self.tol:g}) {mark}"


@dataclass(frozen=True)
class Artifact:
    name: str
    chapter: str  # "07", or "core" for data every chapter uses
    description: str
    files: tuple[str, ...]
    build: Callable[[Path], object]
    verify: Callable[[Path], list[Check]]
    needs: tuple[str, ...] = ()  # artifacts the build reads (built first by `build all`)
    seed: int = 0
    max_bytes: int = MAX_BYTES

    def __post_init__(self) -> None:
        if not self.files:
            raise ValueError(f"files: artifact {self.name!r} must name at least one file")
        for f in self.files:
            if Path(f).is_absolute() or ".." in Path(f).parts:
                raise ValueError(f"files: expected paths inside data/, got {f!r} for {self.name!r}")

    @property
    def command(self) -> str:
        return f"python -m roadmap_lib build {self.name}"


def recorded_seconds(artifact: Artifact, data_dir: Path | None = None) -> float | None:
    """The build time its JSON records hold (``seconds`` / ``train_seconds``, summed), if any."""
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
    total, found = 0.0, False
    for f in artifact.files:
        if not f.endswith(".json") or not (data_dir / f).is_file():
            continue
        record = json.loads((data_dir / f).read_text(encoding="utf-8"))
        for key in ("seconds", "train_seconds"):
            value = record.get(key) if isinstance(record, dict) else None
            if isinstance(value, dict):
                value = sum(v if isinstance(v, (int, float)) else sum(v.values())
                            for v in value.values())
            if isinstance(value, (int, float)):
                total, found = total + value, True
    return total if found else None


def load_checkpoint(name: str, model_from_config: Callable[[dict], object], *,
                    vocab_from_list: Callable[[list], object] | None = None,
                    zoo_dir: Path | None = None):
    """``(model in eval mode, vocabulary or None, record)`` of a shipped ``zoo/NAME`` checkpoint.

    ``model_from_config`` builds the model from the config stored in the weights' header;
    ``vocab_from_list`` rebuilds the tokenizer from the record's ``vocab`` (its tokens in id
    order) and must give back exactly that list, so that no id can move.
    """
    zoo_dir = Path(zoo_dir) if zoo_dir is not None else DATA_DIR / "zoo"
    meta, weights = zoo_dir / f"{name}.json", zoo_dir / f"{name}.safetensors"
    if not meta.is_file() or not weights.is_file():
        raise FileNotFoundError(f"checkpoint {name!r} is not built in {zoo_dir}: "
                                f"run `python -m roadmap_lib build {name}`")
    record = json.loads(meta.read_text(encoding="utf-8"))
    config, _ = read_model_metadata(weights)
    model = model_from_config(config)
    load_model(model, weights)
    vocab = None
    if vocab_from_list is not None:
        vocab = vocab_from_list(record["vocab"])
        itos = getattr(vocab, "itos", None) or getattr(vocab, "chars", None)
        if list(itos) != list(record["vocab"]):
            raise ValueError(f"{meta}: the rebuilt vocabulary does not give back the stored one "
                             "(token ids would move)")
    return model.eval(), vocab, record


def load_char_gpt(name: str = "gpt-char-jargon", zoo_dir: Path | None = None):
    """``(model in eval mode, CharVocab, record)`` of a shipped character-level GPT (built by
    chapter 07; chapters 14 and later quantise, adapt and serve it)."""
    return load_checkpoint(name, lambda c: GPT(GPTConfig(**c)), vocab_from_list=CharVocab,
                           zoo_dir=zoo_dir)


def load_word_bert(name: str = "bert-word-jargon", zoo_dir: Path | None = None):
    """``(BertForMaskedLM in eval mode, WordTokenizer, record)`` of the shipped word-level BERT
    (built by chapter 06; chapters 10 and 22 fine-tune it). Ids 0-4 are its special tokens;
    ``[MASK]`` written in a text is read as the mask token."""
    from .models.bert import BertConfig, BertForMaskedLM
    from .tokenizers.word import WordTokenizer, normalize_word

    def vocab_from_list(itos):
        return WordTokenizer(itos[5:], special_tokens=itos[:5], unk_token="[UNK]", normalize=normalize_word,
                             literal_specials=["[MASK]"])

    return load_checkpoint(name, lambda c: BertForMaskedLM(BertConfig(**c)), vocab_from_list=vocab_from_list,
                           zoo_dir=zoo_dir)


def check(metric: str, got: float, recorded: float, tol: float) -> Check:
    """A :class:`Check` with plain floats (from tensors, numpy or ints)."""
    return Check(metric, float(got), float(recorded), float(tol))


def registry(artifacts: Iterable[Artifact]) -> dict[str, Artifact]:
    """``{name: artifact}``, refusing two artifacts with one name or one file."""
    out: dict[str, Artifact] = {}
    owner: dict[str, str] = {}
    for a in artifacts:
        if a.name in out:
            raise ValueError(f"name: artifact {a.name!r} is registered twice")
        for f in a.files:
            if f in owner:
                raise ValueError(f"files: {f!r} is written by both {owner[f]!r} and {a.name!r}")
            owner[f] = a.name
        out[a.name] = a
    for a in out.values():
        missing = [n for n in a.needs if n not in out]
        if missing:
            raise ValueError(f"needs: artifact {a.name!r} needs unknown artifacts {missing}")
    return out


def is_shipped(artifact: Artifact, data_dir: Path | None = None) -> bool:
    """Whether every file of ``artifact`` is present in ``data_dir`` (``data/``)."""
    root = data_dir or DATA_DIR
    return all((root / f).is_file() for f in artifact.files)


def build_order(artifacts: dict[str, Artifact], names: Iterable[str]) -> list[Artifact]:
    """``names`` and what they need, dependencies first."""
    order: list[Artifact] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ValueError(f"needs: a cycle {' -> '.join((*path, name))}")
        if name not in artifacts:
            raise ValueError(f"name: expected one of {sorted(artifacts)}, got {name!r}")
        if artifacts[name] in order:
            return
        for dep in artifacts[name].needs:
            visit(dep, (*path, name))
        order.append(artifacts[name])

    for n in names:
        visit(n, ())
    return order


def build(artifact: Artifact, data_dir: Path | None = None) -> list[Path]:
    """Build ``artifact`` from its seed and install its files in ``data_dir`` (default ``data/``).

    The files are written to a staging folder inside ``data_dir`` first; each is checked to exist
    and to be at most ``artifact.max_bytes`` before any shipped file is replaced.
    """
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".build-{artifact.name}-", dir=data_dir))
    try:
        for f in artifact.files:
            (staging / f).parent.mkdir(parents=True, exist_ok=True)
        set_seed(artifact.seed)
        artifact.build(staging)
        missing = [f for f in artifact.files if not (staging / f).is_file()]
        if missing:
            raise RuntimeError(f"build of {artifact.name!r} did not write {missing}")
        too_big = {f: (staging / f).stat().st_size for f in artifact.files
                   if (staging / f).stat().st_size > artifact.max_bytes}
        if too_big:
            raise RuntimeError(f"build of {artifact.name!r}: {too_big} over the "
                               f"{artifact.max_bytes} byte limit; nothing in {data_dir} was replaced")
        installed = []
        for f in artifact.files:
            (data_dir / f).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / f, data_dir / f)
            installed.append(data_dir / f)
        return installed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def verify(artifact: Artifact, data_dir: Path | None = None) -> list[Check]:
    """Re-measure ``artifact``'s recorded metrics from its files in ``data_dir`` (default ``data/``)."""
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
    missing = [f for f in artifact.files if not (data_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"artifact {artifact.name!r} is not built in {data_dir}: missing "
                                f"{missing}; run `{artifact.command}`")
    checks = list(artifact.verify(data_dir))
    if not checks:
        raise RuntimeError(f"verify of {artifact.name!r} re-measured nothing")
    return checks


__all__ = ["MAX_BYTES", "Artifact", "Check", "build", "build_order", "check", "load_char_gpt", "load_checkpoint", "recorded_seconds", "registry", "verify"]
