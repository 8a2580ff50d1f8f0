"""Tokenizers from scratch, one module per algorithm, all on the :class:`Tokenizer` interface.

- :mod:`.base`: the interface (``train`` / ``encode`` / ``decode`` / ``save`` / ``load``) and the
  input checks the algorithms share;
- :mod:`.char`: :class:`CharTokenizer`, one token per character;
- :mod:`.word`: :class:`WordTokenizer`, one token per whitespace word (the chapters' word-level
  vocabularies are thin subclasses of it);
- :mod:`.byte_level`: GPT-2's pre-tokenisation pattern and byte characters;
- :mod:`.bpe`: :class:`BPETokenizer`, byte-level BPE; :mod:`.bpe_files`: GPT-2's
  ``vocab.json`` + ``merges.txt``;
- :mod:`.char_bpe`: :class:`CharBPETokenizer`, character-level BPE with SentencePiece-style
  ``<0xNN>`` byte fallback (Llama 2's scheme);
- :mod:`.wordpiece`: :class:`WordPieceTokenizer`; :mod:`.unigram`: :class:`UnigramTokenizer`.

:func:`load` reads back any tokenizer saved with ``save``.
"""

from __future__ import annotations

from . import base, bpe, bpe_files, byte_level, char, char_bpe, unigram, word, wordpiece
from .base import Tokenizer, load
from .bpe import BPETokenizer
from .char import CharTokenizer
from .char_bpe import CharBPETokenizer
from .unigram import UnigramTokenizer
from .word import WordTokenizer
from .wordpiece import WordPieceTokenizer

__all__ = [
    "BPETokenizer",
    "CharBPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "UnigramTokenizer",
    "WordPieceTokenizer",
    "WordTokenizer",
    "base",
    "bpe",
    "bpe_files",
    "byte_level",
    "char",
    "char_bpe",
    "load",
    "unigram",
    "word",
    "wordpiece",
]
