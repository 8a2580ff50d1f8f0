"""Loaders for the shipped data: the corpus as a character-level LM dataset, and the small tasks.

``CharLMData`` turns ``data/jargon.txt`` into a train/validation split of character ids and draws
batches of random windows from a ``torch.Generator`` (so a seed fixes every batch). The task files
in ``data/tasks/`` come from the seeded generators in :mod:`roadmap_lib.tasks`
(``python -m roadmap_lib.tasks build``); :func:`load_task` reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import data_path


def load_text(name: str = "jargon.txt") -> str:
    """The text of a shipped corpus file (UTF-8)."""
    return data_path(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class CharVocab:
    """A character-level vocabulary: id ``i`` is ``chars[i]``; the chars are sorted."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """Ids of ``text`` as a 1-D int64 tensor; raises ``ValueError`` on characters not in the vocab."""
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return torch.tensor([index[c] for c in text], dtype=torch.long)
        except KeyError as err:
            raise ValueError(f"text: character {err.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = [i for i in ids if not 0 <= i < len(self.chars)]
        if bad:
            raise ValueError(f"ids: expected ids in [0, {len(self.chars)}), got {bad[:5]}")
        return "".join(self.chars[i] for i in ids)


class CharLMData:
    """Next-character prediction on a corpus: contiguous train/val split, random-window batches.

    The last ``val_fraction`` of the text is the validation split (no window straddles the two).
    ``get_batch(split, generator)`` returns ``(inputs, targets)`` of shape (batch_size, context),
    targets shifted by one; it is the ``get_batch`` that :func:`roadmap_lib.training.train` expects.
    """

    def __init__(self, text: str | None = None, *, context: int = 64, batch_size: int = 12,
                 val_fraction: float = 0.1, vocab: CharVocab | None = None):
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

    def get_batch(self, split: str, generator: torch.Generator | None = None,
                  batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in self.splits:
            raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
        data, n = self.splits[split], batch_size or self.batch_size
        starts = torch.randint(0, len(data) - self.context - 1, (n,), generator=generator)
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


# --- pretraining objectives: masked LM (BERT) and span corruption (T5) ------------------------


def mlm_mask(ids: torch.Tensor, *, vocab_size: int, mask_id: int, special_ids: tuple[int, ...] = (),
             p: float = 0.15, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: choose ``p`` of the (non-special) positions; of those, 80 % become
    ``mask_id``, 10 % a random token, 10 % stay. Returns ``(inputs, labels)``, labels -100 where
    nothing is predicted (what ``cross_entropy(ignore_index=-100)`` skips)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: expected a probability in (0, 1), got {p!r}")
    if ids.dtype != torch.long:
        raise ValueError(f"ids: expected an int64 tensor, got {ids.dtype}")
    special = torch.isin(ids, torch.tensor(list(special_ids), dtype=torch.long))
    chosen = (torch.rand(ids.shape, generator=generator) < p) & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    action = torch.rand(ids.shape, generator=generator)
    random_tokens = torch.randint(0, vocab_size, ids.shape, generator=generator)
    inputs = torch.where(chosen & (action < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_tokens, inputs)
    return inputs, labels


def span_corrupt(ids: list[int], *, sentinel_ids: list[int], noise_density: float = 0.15,
                 mean_span: float = 3.0, generator: torch.Generator | None = None) -> tuple[list[int], list[int]]:
    """T5's span corruption of one sequence: about ``noise_density`` of the tokens, in spans of
    mean length ``mean_span``, are replaced in the input by one sentinel each; the target lists
    each sentinel followed by the tokens it hides. E.g. ``a b c d e`` -> ``a <0> d e`` / ``<0> b c``.
    """
    n = len(ids)
    if n < 2:
        raise ValueError(f"ids: expected at least 2 tokens, got {n}")
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density: expected a fraction in (0, 1), got {noise_density!r}")
    n_noise = min(n - 1, max(1, round(n * noise_density)))  # at least one token hidden, one kept
    n_spans = max(1, min(round(n_noise / mean_span), n_noise, n - n_noise, len(sentinel_ids)))

    def split(total: int, parts: int) -> list[int]:  # random composition of total into parts >= 1
        cuts = torch.randperm(total - 1, generator=generator)[: parts - 1].add(1).sort().values.tolist()
        bounds = [0, *cuts, total]
        return [b - a for a, b in zip(bounds, bounds[1:])]

    noise_lengths = split(n_noise, n_spans)
    keep_lengths = split(n - n_noise + 1, n_spans + 1)  # +1 so the first kept run may be empty
    keep_lengths[0] -= 1
    inputs, targets, pos = [], [], 0
    for i in range(n_spans):
        inputs += ids[pos : pos + keep_lengths[i]]
        pos += keep_lengths[i]
        inputs.append(sentinel_ids[i])
        targets += [sentinel_ids[i], *ids[pos : pos + noise_lengths[i]]]
        pos += noise_lengths[i]
    inputs += ids[pos:]
    return inputs, targets


__all__ = ["CharLMData", "CharVocab", "load_task", "load_text", "mlm_mask", "span_corrupt", "tasks_dir"]
