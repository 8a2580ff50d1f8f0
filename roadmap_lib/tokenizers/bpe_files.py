"""GPT-2's two tokenizer files, ``vocab.json`` and ``merges.txt``, for a byte-level BPE tokenizer.

Both spell a token's bytes with GPT-2's printable characters
(:func:`roadmap_lib.tokenizers.byte_level.to_chars`). ``vocab.json`` maps each token (special
tokens included) to its id; ``merges.txt`` is a ``#version`` line then one merge per line,
``left right``, in rank order, and the merged token must be in the vocabulary. Malformed files raise
ValueError naming the file and line. (A tokenizer's own :meth:`~BPETokenizer.save` writes the one
Hugging Face ``tokenizer.json`` instead.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..fileio import atomic_write_text
from .bpe import BPETokenizer
from .byte_level import GPT2_PATTERN, to_chars


def save_gpt2(tok: BPETokenizer, directory: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``tok``'s ``vocab.json`` and ``merges.txt`` into ``directory``; return their paths."""
    directory = Path(directory)
    vocab = {to_chars(t): i for i, t in tok.vocab.items()}
    vocab.update(tok.special_tokens)
    atomic_write_text(directory / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    lines = ["#version: 0.2"] + [f"{to_chars(tok.vocab[a])} {to_chars(tok.vocab[b])}"
                                 for a, b in tok.merges]
    atomic_write_text(directory / "merges.txt", "\n".join(lines) + "\n")
    return directory / "vocab.json", directory / "merges.txt"


def load_gpt2(vocab_file: str | os.PathLike, merges_file: str | os.PathLike, special_tokens=(),
              pattern: str = GPT2_PATTERN) -> BPETokenizer:
    """Load GPT-2's two files; ``special_tokens`` must be entries of ``vocab.json``."""
    with open(vocab_file, encoding="utf-8") as f:
        try:
            vocab = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{vocab_file}: not valid JSON ({err})") from None
    if not isinstance(vocab, dict):  # a malformed file, not an argument of the wrong type
        raise ValueError(  # noqa: TRY004
            f"{vocab_file}: expected a JSON object token -> id, got {type(vocab).__name__}")
    unknown = [s for s in special_tokens if s not in vocab]
    if unknown:
        raise ValueError(f"special_tokens: {unknown} are not in {vocab_file}")
    merges = []
    with open(merges_file, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if (n == 1 and line.startswith("#version")) or not line:
                continue
            parts = line.split(" ")
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"{merges_file}: line {n}: expected two tokens separated by one "
                                 f"space, got {line!r}")
            merges.append((parts[0], parts[1]))
    return BPETokenizer.from_vocab(vocab, merges, {s: vocab[s] for s in special_tokens}, pattern,
                                   str(vocab_file))


__all__ = ["load_gpt2", "save_gpt2"]
