"""Loaders for the shipped data: the corpus as a character-level LM dataset, and the small tasks.

``CharLMData`` turns ``data/jargon.txt`` into a train/validation split of character ids and draws
batches of random windows from a ``torch.Generator`` (so a seed fixes every batch). The task files
in ``data/tasks/`` come from the seeded generators in :mod:`roadmap_lib.tasks`
(``python -m roadmap_lib build tasks``); :func:`load_task` reads them back.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import data_path
from .tokenizers.char import CharTokenizer


def load_text(name: str = "jargon.txt") -> str:
    """The text of a shipped corpus file (UTF-8)."""
    return data_path(name).read_text(encoding="utf-8")


class CharVocab(CharTokenizer):
    """The vocabulary of the character-level language models: id ``i`` is ``chars[i]``, the chars
    sorted, no unknown token (an unseen character raises ValueError). A
    :class:`~roadmap_lib.tokenizers.CharTokenizer` with ``unk_token=None`` (so ``itos``, ``stoi``,
    ``decode``, ``save``/``load`` are its), built from a string of characters, whose ``encode``
    gives the 1-D int64 tensor the LM batches are cut from."""

    def __init__(self, chars: str):
        super().__init__(unk_token=None)
        self._set_vocab(list(chars))

    @property
    def chars(self) -> str:
        return "".join(self.itos)

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls("".join(sorted(set(text))))

    def encode(self, text: str) -> torch.Tensor:
        """Ids of ``text`` as a 1-D int64 tensor; raises ``ValueError`` on characters not in the vocab."""
        return torch.tensor(super().encode(text), dtype=torch.long)

    @classmethod
    def from_dict(cls, d: dict) -> CharVocab:
        if d.get("unk_token") is not None:
            raise ValueError(f"unk_token: a CharVocab has none, the file has {d['unk_token']!r}")
        return cls("".join(d["vocab"]))


# Artifacts whose shipped files were trained with the sampler before the fix of issue 12: their
# builders (chapter code, each naming its artifact beside the call) pass ``legacy_starts=True`` so
# that `python -m roadmap_lib build NAME` still reproduces the shipped file. Rebuilding one with the
# fixed sampler removes it here.
LEGACY_SAMPLER_ARTIFACTS = ("gpt-char-jargon", "gpt-char-draft", "gpt-char-distilled")


class CharLMData:
    """Next-character prediction on a corpus: contiguous train/val split, random-window batches.

    The last ``val_fraction`` of the text is the validation split (no window straddles the two).
    ``get_batch(split, generator)`` returns ``(inputs, targets)`` of shape (batch_size, context),
    targets shifted by one; it is the ``get_batch`` that :func:`roadmap_lib.training.train` expects.
    Every window of a split is equally likely, the last one included.

    ``legacy_starts=True`` reproduces the sampler used before the fix of issue 12, which never drew
    a split's last window (its exclusive upper bound was one too small). It exists only so that the
    build commands of artifacts trained before the fix still reproduce their shipped files; those
    builders are listed in ``LEGACY_SAMPLER_ARTIFACTS`` (tests/test_data.py keeps every other caller
    off it), and each is dropped from the list when its artifact is rebuilt with the fixed sampler.
    """

    def __init__(self, text: str | None = None, *, context: int = 64, batch_size: int = 12,
                 val_fraction: float = 0.1, vocab: CharVocab | None = None, legacy_starts: bool = False):
        text = load_text() if text is None else text
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction: expected a float in (0, 1), got {val_fraction!r}")
        if context < 1 or batch_size < 1:
            raise ValueError(f"context/batch_size: expected ints >= 1, got {context}, {batch_size}")
        self.vocab = vocab or CharVocab.from_text(text)
        ids = self.vocab.encode(text)
        n_val = int(len(ids) * val_fraction)
        self.splits = {"train": ids[:-n_val], "val": ids[-n_val:]}
        for name, part in self.splits.items():
            if len(part) <= context + 1:
                raise ValueError(
                    f"text: the {name} split has {len(part)} characters, fewer than context+2={context + 2}"
                )
        self.context, self.batch_size = context, batch_size
        self.legacy_starts = bool(legacy_starts)

    def get_batch(self, split: str, generator: torch.Generator | None = None,
                  batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in self.splits:
            raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
        data, n = self.splits[split], batch_size or self.batch_size
        # A window reads `context` characters and predicts the next one of each, so it needs
        # context + 1 characters: valid starts are 0 .. len(data) - context - 1, and randint's upper
        # bound is exclusive. (The legacy sampler's bound was one lower: the last window never came.)
        n_starts = len(data) - self.context - (1 if self.legacy_starts else 0)
        starts = torch.randint(0, n_starts, (n,), generator=generator)
        offsets = torch.arange(self.context)
        x = data[starts[:, None] + offsets]
        y = data[starts[:, None] + offsets + 1]
        return x, y


# --- task files ------------------------------------------------------------------------------


def tasks_dir() -> Path:
    return data_path("tasks")


def load_task(name: str, split: str) -> list[dict[str, str]]:
    """Rows of ``data/tasks/<name>/<split>.tsv`` as dicts (column name → string).

    ``name``: "translation" (columns ``src``, ``tgt``) or "acceptability" (``label``, ``text``,
    ``swap_i``, ``swap_j``); ``split``: "train", "val" or "test".
    """
    path = tasks_dir() / name / f"{split}.tsv"
    if not path.is_file():
        have = sorted(p.name for p in tasks_dir().iterdir())
        raise FileNotFoundError(f"task file {path} not found; tasks available: {', '.join(have)}")
    header, *lines = path.read_text(encoding="utf-8").splitlines()
    columns = header.split("\t")
    return [dict(zip(columns, line.split("\t"))) for line in lines]


def pad_batch(seqs: list[list[int]], value: int) -> torch.Tensor:
    """Id lists of different lengths as one (batch, longest) int64 tensor, right-padded with ``value``."""
    if not seqs:
        raise ValueError("seqs: expected at least one sequence, got none")
    width = max(len(s) for s in seqs)
    return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


__all__ = ["CharLMData", "CharVocab", "load_task", "load_text", "pad_batch", "tasks_dir"]
