"""A parallel multilingual sample from gettext catalogues, and what tokenisation costs per language.

A *parallel* sample holds the same messages in several languages. Sphinx ships one with every
install: its user interface messages (``msgid``, English) and their translations (``msgstr``) in
``sphinx/locale/<lang>/LC_MESSAGES/sphinx.po`` (BSD-2-Clause, the Sphinx licence).

- :func:`strip_format` removes printf/``str.format`` placeholders and HTML entities, so that what
  is counted is language, not code;
- :func:`read_catalogue` reads one ``.po`` file (translated, non-fuzzy entries only);
- :func:`parallel_sample` keeps the messages translated into *every* requested language;
- :func:`token_counts`, :func:`fertility` and :func:`token_premium` measure a tokenizer per language:
  tokens per message, tokens per character, and tokens relative to English for the same messages
  (what a speaker pays, in context and in per-token prices, to say the same thing).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

#: printf codes (``%s``, ``%(name)s``, ``%d``, ``%5.2f``), ``str.format`` fields (``{0}``,
#: ``{name}``, ``{}``), and a literal ``%%``.
_FORMAT = re.compile(r"%\([A-Za-z_][A-Za-z0-9_]*\)[-#0 +]*\d*(?:\.\d+)?[sdrif]"
                     r"|%[-#0 +]*\d*(?:\.\d+)?[sdrifbYmHMSpaAByz]"
                     r"|\{[A-Za-z0-9_]*(?:![rsa])?(?::[^{}]*)?\}"
                     r"|%%")
_SPACE = re.compile(r"\s+")


def strip_format(text: str) -> str:
    """``text`` without format placeholders or HTML entities, whitespace collapsed to one space.

    >>> strip_format("copying %(n)s files to {dest}&#8230;")
    'copying files to …'
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    return _SPACE.sub(" ", html.unescape(_FORMAT.sub(" ", text))).strip()


def _location(locations) -> str:
    """The top-level part of Sphinx a message comes from: ``ext``, ``builders``, ``cmd``, ..."""
    if not locations:
        return ""
    parts = Path(locations[0][0]).parts
    if len(parts) >= 2 and parts[0] == "sphinx":
        return Path(parts[1]).stem
    return Path(parts[0]).stem


def read_catalogue(path: str | Path) -> dict[str, dict]:
    """``{msgid: {"text": msgstr, "source": part of Sphinx}}`` for translated, non-fuzzy entries.

    Plural entries (tuples) are skipped. Needs ``babel`` (installed with Sphinx).
    """
    from babel.messages.pofile import read_po

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no catalogue at {path}")
    with path.open("rb") as f:
        catalogue = read_po(f)
    return {m.id: {"text": m.string, "source": _location(m.locations)} for m in catalogue
            if isinstance(m.id, str) and m.id and isinstance(m.string, str) and m.string
            and not m.fuzzy}


def sphinx_locale_dir() -> Path:
    """The installed Sphinx's ``locale`` folder."""
    import sphinx

    return Path(sphinx.__file__).parent / "locale"


def parallel_sample(languages: Sequence[str], locale_dir: str | Path | None = None,
                    min_words: int = 2) -> list[dict]:
    """Messages translated into every language of ``languages``, format codes stripped.

    Returns a list sorted by the English text, each ``{"source": ..., "en": ..., lang: ...}``.
    A message is kept when its stripped English has at least ``min_words`` words and every
    stripped translation is non-empty.
    """
    if isinstance(languages, str) or not languages:
        raise ValueError(f"languages: expected a non-empty list of language codes, got {languages!r}")
    if "en" in languages:
        raise ValueError("languages: 'en' is the source language (msgid); list only translations")
    if not isinstance(min_words, int) or min_words < 1:
        raise ValueError(f"min_words: expected an int >= 1, got {min_words!r}")
    root = Path(locale_dir) if locale_dir is not None else sphinx_locale_dir()
    cats = {lang: read_catalogue(root / lang / "LC_MESSAGES" / "sphinx.po") for lang in languages}
    common = set.intersection(*(set(c) for c in cats.values()))
    rows = {}
    for msgid in sorted(common):  # sorted: which duplicate is kept must not depend on hashing
        en = strip_format(msgid)
        row = {"source": cats[languages[0]][msgid]["source"], "en": en}
        row.update({lang: strip_format(cats[lang][msgid]["text"]) for lang in languages})
        if len(en.split()) >= min_words and all(row[lang] for lang in languages):
            rows.setdefault(en, row)  # two msgids may strip to the same text: keep one
    return [rows[k] for k in sorted(rows)]


def _check_sample(sample, languages) -> None:
    if not sample:
        raise ValueError("sample: expected a non-empty list of parallel messages, got none")
    missing = [lang for lang in languages if lang not in sample[0]]
    if missing:
        raise ValueError(f"languages: {missing} not in the sample (it has {sorted(sample[0])})")


def token_counts(tokenizer, sample: Sequence[dict], languages: Iterable[str]) -> dict[str, list[int]]:
    """``{lang: [tokens of message 0, tokens of message 1, ...]}`` for ``tokenizer.encode``."""
    languages = list(languages)
    _check_sample(sample, languages)
    return {lang: [len(tokenizer.encode(row[lang])) for row in sample] for lang in languages}


def fertility(tokenizer, sample: Sequence[dict], languages: Iterable[str]) -> dict[str, dict]:
    """Per language: ``tokens``, ``chars``, ``words`` (whitespace-separated), ``tokens_per_char``
    and ``tokens_per_message`` summed over ``sample``.

    Tokens per *word* is misleading across languages (Chinese and Japanese do not separate words
    by spaces), so the comparison that holds across scripts is per message: :func:`token_premium`.
    """
    counts = token_counts(tokenizer, sample, languages)
    out = {}
    for lang, per_msg in counts.items():
        chars = sum(len(row[lang]) for row in sample)
        words = sum(len(row[lang].split()) for row in sample)
        out[lang] = {"tokens": sum(per_msg), "chars": chars, "words": words,
                     "tokens_per_char": sum(per_msg) / chars,
                     "tokens_per_message": sum(per_msg) / len(sample)}
    return out


def token_premium(tokenizer, sample: Sequence[dict], languages: Iterable[str],
                  reference: str = "en") -> dict[str, float]:
    """Tokens a language needs for ``sample`` divided by the tokens ``reference`` needs for the
    same messages: 2.0 means twice the context used and twice the bill at a per-token price."""
    languages = list(languages)
    counts = token_counts(tokenizer, sample, [reference, *[x for x in languages if x != reference]])
    ref = sum(counts[reference])
    if ref == 0:
        raise ValueError(f"reference: {reference!r} has no tokens in the sample")
    return {lang: sum(counts[lang]) / ref for lang in languages}


def split(sample: Sequence[dict], test_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded (train, test) split of the messages (the same split for every language)."""
    import random

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    order = list(range(len(sample)))
    random.Random(seed).shuffle(order)
    n_test = max(1, round(len(sample) * test_fraction))
    test = sorted(order[:n_test])
    train = sorted(order[n_test:])
    return [sample[i] for i in train], [sample[i] for i in test]


__all__ = ["fertility", "parallel_sample", "read_catalogue", "sphinx_locale_dir", "split",
           "strip_format", "token_counts", "token_premium"]
