"""The checks of chapter 02's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and expected answers (written out by hand, or taken from the
chapter's trained tokenizer), so the notebook's namespace holds no reference a student could call,
and declares the usual wrong answers in plain words as small wrong functions: when an answer returns
what one of them returns, the message names that mistake. Exercise 02.5 is a "predict, then
measure" exercise: its check compares predicted token counts with the counts the chapter's tokenizer
gives, and names the tempting wrong predictions.
"""

from __future__ import annotations

import math

import regex

from roadmap_lib.exercises import check_equal, check_function

# ---- exercise 02.1: pair counts -------------------------------------------------------------------


def _pair_counts(ids, *, step=1, stop=0, once=False):
    counts = {}
    for i in range(0, len(ids) - 1 - stop, step):
        pair = (ids[i], ids[i + 1])
        counts[pair] = 1 if once else counts.get(pair, 0) + 1
    return counts


PAIR_COUNTS_MISTAKES = {
    "the ids are walked two at a time, so the overlapping pairs between them are missed":
        lambda ids: _pair_counts(ids, step=2),
    "each pair is counted once however often it occurs (a set of pairs, not a count)":
        lambda ids: _pair_counts(ids, once=True),
    "the last pair is missed: the loop stops one position too early":
        lambda ids: _pair_counts(ids, stop=1),
}


def check_pair_counts(fn) -> None:
    """Exercise 02.1: ``fn(ids)`` maps each adjacent pair of ``ids`` to its number of occurrences."""
    check_equal(fn, [(([1, 2, 1, 2, 1, 2],), {(1, 2): 3, (2, 1): 2}),
                     (([1, 2, 3, 1, 2],), {(1, 2): 2, (2, 3): 1, (3, 1): 1}),
                     (([1, 1, 1],), {(1, 1): 2}), (([7],), {})], mistakes=PAIR_COUNTS_MISTAKES)


# ---- exercise 02.2: apply a merge -----------------------------------------------------------------


def _merge(ids, pair, new_id, *, skip=2, stop=0, reverse=False):
    ids = ids[::-1] if reverse else ids
    pair = pair[::-1] if reverse else pair
    out, i = [], 0
    while i < len(ids) - stop:
        if i < len(ids) - 1 and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            i += skip
        else:
            out.append(ids[i])
            i += 1
    return out[::-1] if reverse else out


MERGE_MISTAKES = {
    "after a match the index moves one step instead of two, so the pair's second id is kept too":
        lambda ids, pair, new_id: _merge(ids, pair, new_id, skip=1),
    "the last id is dropped when it is not part of a pair (the loop stops at len(ids) − 1)":
        lambda ids, pair, new_id: _merge(ids, pair, new_id, stop=1),
    "the list is scanned right to left: [1, 1, 1] becomes [1, 9] instead of [9, 1]":
        lambda ids, pair, new_id: _merge(ids, pair, new_id, reverse=True),
}


def check_merge(fn) -> None:
    """Exercise 02.2: ``fn(ids, pair, new_id)`` replaces ``pair`` left to right, without overlaps."""
    check_equal(fn, [(([1, 2, 3, 1, 2], (1, 2), 9), [9, 3, 9]),
                     (([1, 1, 1], (1, 1), 9), [9, 1]),
                     (([1, 1, 1, 1], (1, 1), 9), [9, 9]),
                     (([5, 6], (6, 5), 9), [5, 6])], mistakes=MERGE_MISTAKES)


# ---- exercise 02.3: greedy WordPiece --------------------------------------------------------------

#: A small vocabulary on which the usual wrong splits all differ from the right one.
SMALL_VOCAB = frozenset({"p", "pl", "play", "##a", "##y", "##l", "##in", "##g", "##ing", "##s", "ing", "s"})
SMALL_CASES = [("playing", ["play", "##ing"]), ("plays", ["play", "##s"]), ("plays!", ["[UNK]"]),
               ("pl", ["pl"])]
#: The words the notebook's trained tokenizer is compared on.
TEST_WORDS = ("hacker", "kludgification", "unbelievably", "cruft", "x\N{PARTY POPPER}y")


def _wordpiece(word, vocab, *, shortest=False, prefix=True, first_prefix=False, unk="word"):
    pieces, start = [], 0
    while start < len(word):
        ends = range(start + 1, len(word) + 1) if shortest else range(len(word), start, -1)
        for end in ends:
            piece = word[start:end] if start == 0 and not first_prefix else \
                ("##" if prefix else "") + word[start:end]
            if piece in vocab:
                pieces.append(piece)
                start = end
                break
        else:
            if unk == "word":
                return ["[UNK]"]
            if unk == "piece":
                pieces.append("[UNK]")
            start += 1
    return pieces


WORDPIECE_MISTAKES = {
    "the shortest piece is taken first: WordPiece tries the longest match first":
        lambda word, vocab: _wordpiece(word, vocab, shortest=True),
    "the ## prefix is left out for the pieces that do not start the word":
        lambda word, vocab: _wordpiece(word, vocab, prefix=False),
    "the first piece gets the ## prefix too: only the pieces after the first carry it":
        lambda word, vocab: _wordpiece(word, vocab, first_prefix=True),
    "only the unmatched character becomes [UNK]: the whole word must be [UNK]":
        lambda word, vocab: _wordpiece(word, vocab, unk="piece"),
    "the unmatched character is skipped: the whole word must be [UNK]":
        lambda word, vocab: _wordpiece(word, vocab, unk="skip"),
}


def check_wordpiece_split(fn, tokenizer=None) -> None:
    """Exercise 02.3: ``fn(word, vocab)`` splits greedily, longest match first, ``[UNK]`` for the
    whole word when a position has no piece. Checked on a small vocabulary, then (when the chapter's
    trained :class:`~roadmap_lib.tokenizers.WordPieceTokenizer` is given) against its ``encode``."""
    cases = [((word, set(SMALL_VOCAB)), pieces) for word, pieces in SMALL_CASES]
    if tokenizer is not None:
        vocab = set(tokenizer.vocab)
        cases += [((w, vocab), [tokenizer.itos[i] for i in tokenizer.encode(w)]) for w in TEST_WORDS]
    check_equal(fn, cases, mistakes=WORDPIECE_MISTAKES)


# ---- exercise 02.4: bits per character ------------------------------------------------------------

BITS_PER_CHAR_MISTAKES = {
    "the nats are not converted to bits (divide by ln 2)":
        lambda nll, n: nll / n,
    "the nats are multiplied by ln 2 instead of divided by it":
        lambda nll, n: nll * math.log(2) / n,
    "it divides by log10(2), not ln 2: nats are natural logarithms":
        lambda nll, n: nll / math.log10(2) / n,
    "the total is not divided by the number of characters (bits per text, not per character)":
        lambda nll, n: nll / math.log(2),
}


def check_bits_per_char(fn) -> None:
    """Exercise 02.4: ``fn(nll_nats, n_chars)`` is the bits per character."""
    check_function(fn, [((math.log(2) * 100, 100), 1.0), ((693.147, 250), 4.0)], atol=1e-3,
                   mistakes=BITS_PER_CHAR_MISTAKES)


# ---- exercise 02.5: what numbers and unseen scripts cost, predicted then measured -----------------

#: Texts made of digits, single spaces, one ASCII full stop and characters that the Jargon File never
#: uses (Cyrillic, Chinese, an emoji, Devanagari), in an order where each declared mistake fails
#: first on a case that tells it apart.
TOKEN_TEXTS = ("1983", "Привет", "中文", "🎉", "3.14159", "12345 67890", "2026 年", "नमस्ते")


TOKEN_COUNT_MISTAKES = {
    "a run of digits is counted as one token: this tokenizer cuts every digit into its own token":
        lambda text: len(regex.findall(r"\d+", text)) + sum(len(c.encode()) for c in text if not c.isdigit()),
    "one token per character: a character the tokenizer never saw has no token of its own and is "
    "spelled as its UTF-8 bytes, one token each (there is no <unk>)":
        lambda text: len(text),
    "every non-ASCII character is counted as 2 bytes: UTF-8 uses 2 bytes for Cyrillic, 3 for "
    "Chinese and Devanagari, 4 for an emoji":
        lambda text: sum(1 if ord(c) < 128 else 2 for c in text),
    "every non-ASCII character is counted as 3 bytes: UTF-8 uses 2 for Cyrillic and 4 for an emoji":
        lambda text: sum(1 if ord(c) < 128 else 3 for c in text),
}


def check_token_counts(fn, tokenizer) -> None:
    """Exercise 02.5: ``fn(text)`` predicts how many tokens ``tokenizer`` (the chapter's byte-level
    BPE with split digits) gives each of :data:`TOKEN_TEXTS`; compared exactly with
    ``len(tokenizer.encode(text))``, then printed side by side."""
    if not hasattr(tokenizer, "encode"):
        raise TypeError(f"tokenizer: expected a tokenizer with encode(text), got {type(tokenizer).__name__}")
    measured = {text: len(tokenizer.encode(text)) for text in TOKEN_TEXTS}
    check_function(fn, [((text,), float(n)) for text, n in measured.items()], name="predict_tokens",
                   atol=0, rtol=0, mistakes=TOKEN_COUNT_MISTAKES)
    for text, n in measured.items():
        print(f"{text!r:<15} predicted {fn(text):>3}   measured {n:>3}")
