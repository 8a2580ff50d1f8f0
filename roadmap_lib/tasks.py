"""Seeded generators of the three small tasks shipped in ``data/tasks/``.

**translation**: sentences of a small English grammar and their translation into "Zetan", an
invented verb-final language. Zetan puts adjectives and determiners after the noun, the verb at
the end (subject-object-verb), adverbs first and prepositions after their noun phrase
(postpositions); nouns mark the plural and verbs the tense with suffixes. A model must learn a
lexicon *and* reorder words, so partial answers get partial BLEU: a real BLEU signal on a task a
laptop learns in minutes.

**acceptability**: sentences of the Jargon File (``data/jargon.txt``); half of them have two words
swapped. Label 1 = the original sentence, 0 = corrupted (columns ``swap_i``/``swap_j`` give the
swapped word positions, -1 for originals, so the same file serves token labelling). Learnable from
word order alone but not trivial: some swaps keep a sentence plausible.

**intruder**: the same sentences, in the same splits, as *acceptability*; in half of them one word
is replaced by an intruder drawn uniformly from the words that occur at least
``INTRUDER_MIN_COUNT`` times in the corpus (lower case; the replaced word's capital and surrounding
punctuation are kept). Label 1 = original, 0 = one word replaced; ``position`` is the replaced
word's index (-1 for originals) and ``original`` the word that was there. Spotting the intruder
needs to know which words fit a context, which is what masked-LM pretraining teaches.

``python -m roadmap_lib build tasks`` rewrites all three from their seeds; the output is byte-identical
on every machine (pure-Python ``random.Random``, no floating point).
"""

from __future__ import annotations

import hashlib
import random
import re
import tempfile
from pathlib import Path

from . import DATA_DIR
from .fileio import atomic_write_text
from .zoo import Artifact, check

TRANSLATION_SEED = 5
ACCEPTABILITY_SEED = 6
INTRUDER_SEED = 8
INTRUDER_MIN_COUNT = 10
TRANSLATION_SIZES = {"train": 8000, "val": 1000, "test": 1000}
ACCEPTABILITY_SIZES = {"train": 5600, "val": 700, "test": 700}
_PLAIN = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": "--"}

# English lexicon: nouns (singular, plural), verbs (3rd-singular present, plural present, past).
NOUNS = [("cat", "cats"), ("dog", "dogs"), ("bird", "birds"), ("hacker", "hackers"),
         ("robot", "robots"), ("king", "kings"), ("farmer", "farmers"), ("river", "rivers"),
         ("house", "houses"), ("tree", "trees"), ("ship", "ships"), ("book", "books"),
         ("lamp", "lamps"), ("horse", "horses"), ("garden", "gardens"), ("stone", "stones"),
         ("teacher", "teachers"), ("window", "windows"), ("program", "programs"), ("wizard", "wizards")]
VERBS = [("sees", "see", "saw"), ("likes", "like", "liked"), ("finds", "find", "found"),
         ("builds", "build", "built"), ("carries", "carry", "carried"), ("follows", "follow", "followed"),
         ("paints", "paint", "painted"), ("watches", "watch", "watched"), ("breaks", "break", "broke"),
         ("helps", "help", "helped"), ("hides", "hide", "hid"), ("writes", "write", "wrote")]
ADJECTIVES = ["small", "big", "red", "old", "quiet", "clever", "green", "strange", "happy", "dark",
              "bright", "lazy"]
DETERMINERS = ["the", "a", "every", "no", "this", "my"]
ADVERBS = ["quickly", "slowly", "often", "never", "today", "again"]
PREPOSITIONS = ["near", "behind", "under", "with", "inside"]


def _zetan_lexicon(rng: random.Random) -> dict[str, str]:
    """A unique invented stem for every English lemma, made of consonant-vowel syllables."""
    consonants, vowels = "ptkbdgmnlrsvz", "aeiou"
    lemmas = ([n for n, _ in NOUNS] + [v for _, v, _ in VERBS] + ADJECTIVES + DETERMINERS
              + ADVERBS + PREPOSITIONS)
    lexicon, used = {}, set()
    for lemma in lemmas:
        while True:
            word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 3)))
            if word not in used:
                used.add(word)
                lexicon[lemma] = word
                break
    return lexicon


def _noun_phrase(rng, lex, allow_pp: bool) -> tuple[list[str], list[str], bool]:
    """English words, Zetan words and plurality of a noun phrase (maybe with a prepositional phrase)."""
    singular, plural = rng.choice(NOUNS)
    is_plural = rng.random() < 0.35
    det = rng.choice(["the", "my", "no"] if is_plural else DETERMINERS)
    adjs = rng.sample(ADJECTIVES, rng.choice([0, 0, 1, 1, 2]))
    en = [det, *adjs, plural if is_plural else singular]
    zt = [lex[singular] + ("n" if is_plural else ""), *[lex[a] for a in adjs], lex[det]]
    if allow_pp and rng.random() < 0.3:
        prep = rng.choice(PREPOSITIONS)
        pen, pzt, _ = _noun_phrase(rng, lex, allow_pp=False)
        en += [prep, *pen]
        zt += [*pzt, lex[prep]]
    return en, zt, is_plural


def translation_pair(rng: random.Random, lex: dict[str, str]) -> tuple[str, str]:
    subj_en, subj_zt, plural = _noun_phrase(rng, lex, allow_pp=True)
    obj_en, obj_zt, _ = _noun_phrase(rng, lex, allow_pp=True)
    sing, plur, past = rng.choice(VERBS)
    tense = rng.choice(["present", "past"])
    verb_en = past if tense == "past" else (plur if plural else sing)
    verb_zt = lex[plur] + ("ta" if tense == "past" else "ru")
    adverb = rng.choice(ADVERBS) if rng.random() < 0.4 else None
    en = [*subj_en, verb_en, *obj_en] + ([adverb] if adverb else [])
    zt = ([lex[adverb]] if adverb else []) + [*subj_zt, *obj_zt, verb_zt]
    return " ".join(en), " ".join(zt)


def translation_rows(seed: int = TRANSLATION_SEED) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    lex = _zetan_lexicon(rng)
    seen, rows = set(), []
    total = sum(TRANSLATION_SIZES.values())
    while len(rows) < total:
        src, tgt = translation_pair(rng, lex)
        if src not in seen:  # no sentence in two splits
            seen.add(src)
            rows.append({"src": src, "tgt": tgt})
    return _split(rows, TRANSLATION_SIZES)


def corpus_sentences(text: str, min_words: int = 6, max_words: int = 30) -> list[str]:
    """Prose sentences of the Jargon File in plain ASCII, without cross-reference braces or symbols."""
    text = text.replace("{", "").replace("}", "")
    for fancy, plain in _PLAIN.items():
        text = text.replace(fancy, plain)
    sentences = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"])", para):
            words = s.split()
            if (min_words <= len(words) <= max_words
                    and re.fullmatch(r"[A-Za-z0-9 ,.;:'\"()\[\]!?/&-]+", s) and s[-1] in ".!?\""):
                sentences.append(s)
    return sorted(set(sentences))


def acceptability_rows(seed: int = ACCEPTABILITY_SEED) -> dict[str, list[dict]]:
    text = (DATA_DIR / "jargon.txt").read_text(encoding="utf-8")
    rng = random.Random(seed)
    sentences = corpus_sentences(text)
    rng.shuffle(sentences)
    total = sum(ACCEPTABILITY_SIZES.values())
    if len(sentences) < total:
        raise RuntimeError(f"only {len(sentences)} usable sentences, need {total}")
    rows = []
    for s in sentences[:total]:
        words = s.split()
        if rng.random() < 0.5:
            rows.append({"label": "1", "text": s, "swap_i": "-1", "swap_j": "-1"})
            continue
        while True:
            i, j = sorted(rng.sample(range(len(words)), 2))
            if words[i].lower() != words[j].lower():
                break
        words[i], words[j] = words[j], words[i]
        rows.append({"label": "0", "text": " ".join(words), "swap_i": str(i), "swap_j": str(j)})
    return _split(rows, ACCEPTABILITY_SIZES)


def _bare(word: str) -> tuple[str, str, str]:
    """``(leading punctuation, core, trailing punctuation)`` of a whitespace word."""
    m = re.fullmatch(r"([^A-Za-z0-9]*)(.*?)([^A-Za-z0-9]*)", word)
    return m.group(1), m.group(2), m.group(3)


def intruder_rows(seed: int = INTRUDER_SEED) -> dict[str, list[dict]]:
    """The acceptability task's original sentences (same splits), half with one word replaced."""
    originals = {}
    for split, rows in acceptability_rows().items():
        originals[split] = []
        for row in rows:
            words = row["text"].split()
            i, j = int(row["swap_i"]), int(row["swap_j"])
            if i >= 0:
                words[i], words[j] = words[j], words[i]
            originals[split].append(words)
    text = (DATA_DIR / "jargon.txt").read_text(encoding="utf-8")
    counts: dict[str, int] = {}
    for s in corpus_sentences(text):
        for w in s.split():
            core = _bare(w)[1].lower()
            if core.isalpha():
                counts[core] = counts.get(core, 0) + 1
    pool = sorted(w for w, c in counts.items() if c >= INTRUDER_MIN_COUNT)
    rng = random.Random(seed)
    out = {}
    for split, sentences in originals.items():
        out[split] = []
        for words in sentences:
            if rng.random() < 0.5:
                out[split].append({"label": "1", "text": " ".join(words), "position": "-1", "original": ""})
                continue
            candidates = [k for k, w in enumerate(words) if _bare(w)[1].isalpha()]
            k = rng.choice(candidates)
            lead, core, trail = _bare(words[k])
            while True:
                new = rng.choice(pool)
                if new != core.lower():
                    break
            if core[0].isupper():
                new = new[0].upper() + new[1:]
            words = list(words)
            words[k] = lead + new + trail
            out[split].append({"label": "0", "text": " ".join(words), "position": str(k), "original": core})
    return out


def _split(rows: list[dict], sizes: dict[str, int]) -> dict[str, list[dict]]:
    out, start = {}, 0
    for name, n in sizes.items():
        out[name] = rows[start : start + n]
        start += n
    return out


def _write_tsv(rows: list[dict], path: Path) -> None:
    """Tab-separated, header first; fields never contain tabs or newlines (checked)."""
    columns = list(rows[0])
    lines = ["\t".join(columns)]
    for row in rows:
        fields = [row[c] for c in columns]
        if any("\t" in f or "\n" in f for f in fields):
            raise ValueError(f"row {row!r}: a field contains a tab or newline")
        lines.append("\t".join(fields))
    text = "\n".join(lines) + "\n"
    atomic_write_text(path, text)


GENERATORS = {"translation": translation_rows, "acceptability": acceptability_rows, "intruder": intruder_rows}


def build(out_dir: Path | None = None) -> list[Path]:
    """Write ``<out_dir>/<task>/<split>.tsv`` for every task; return the paths."""
    out_dir = Path(out_dir) if out_dir else DATA_DIR / "tasks"
    paths = []
    for name, make in GENERATORS.items():
        for split, rows in make().items():
            path = out_dir / name / f"{split}.tsv"
            _write_tsv(rows, path)
            paths.append(path)
    return paths


def _build_artifact(root: Path) -> None:
    build(root / "tasks")


def _verify_artifact(root: Path):
    """Regenerate every task file from its seed in a scratch folder; each must be byte-identical."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh = {p.relative_to(scratch).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in build(Path(scratch))}
    return [check(f"tasks/{name} identical to a fresh build",
                  float(hashlib.sha256((root / "tasks" / name).read_bytes()).hexdigest() == digest),
                  1.0, 0) for name, digest in sorted(fresh.items())]


#: The task files, one artifact (core: chapters 05, 06 and 08 read them).
ARTIFACT = Artifact(
    "tasks", "core", "generated task files: English -> Zetan translation, acceptability "
    "(word-swap) and intruder (word-replaced) sentences, train/val/test",
    tuple(f"tasks/{name}/{split}.tsv" for name in GENERATORS for split in ("train", "val", "test")),
    _build_artifact, _verify_artifact,
)
