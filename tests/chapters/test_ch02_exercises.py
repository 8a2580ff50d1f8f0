"""Chapter 02's exercise checks: the right answers pass, and each declared mistake, written the way
a student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import math
import re
from collections import Counter
from itertools import pairwise

import pytest

from roadmap_lib.chapters.ch02_tokenization_embeddings import exercises as ex
from roadmap_lib.exercises import ExerciseError
from roadmap_lib.tokenizers import WordPieceTokenizer


def pair_counts(ids):
    return dict(Counter(pairwise(ids)))


def merge(ids, pair, new_id):
    out, skip = [], False
    for i, x in enumerate(ids):
        if skip:
            skip = False
        elif tuple(ids[i:i + 2]) == tuple(pair):
            out.append(new_id)
            skip = True
        else:
            out.append(x)
    return out


def wordpiece_split(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start and (word[start:end] if start == 0 else "##" + word[start:end]) not in vocab:
            end -= 1
        if end == start:
            return ["[UNK]"]
        pieces.append(word[start:end] if start == 0 else "##" + word[start:end])
        start = end
    return pieces


def test_right_answers_pass(capsys):
    ex.check_pair_counts(pair_counts)
    ex.check_merge(merge)
    ex.check_wordpiece_split(wordpiece_split)
    ex.check_bits_per_char(lambda nll, n: nll / n / math.log(2))
    assert capsys.readouterr().out.count("Correct") == 4


def test_wordpiece_matches_a_trained_tokenizer():
    text = "the hacker kludged the cruft; unbelievably, the kludge worked. " * 20
    tok = WordPieceTokenizer().train(text, 60)
    ex.check_wordpiece_split(wordpiece_split, tokenizer=tok)


def _named(check, fn, words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
        check(fn)


def _pairs_two_at_a_time(ids):
    counts = {}
    for a, b in zip(ids[0::2], ids[1::2]):
        counts[(a, b)] = counts.get((a, b), 0) + 1
    return counts


def _last_pair_missed(ids):
    counts = {}
    for i in range(len(ids) - 2):
        counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
    return counts


STUDENT_PAIR_COUNTS = {
    "overlapping pairs between them are missed": _pairs_two_at_a_time,
    "counted once however often": lambda ids: dict.fromkeys(pairwise(ids), 1),
    "the last pair is missed": _last_pair_missed,
}


@pytest.mark.parametrize("words", list(STUDENT_PAIR_COUNTS))
def test_each_pair_counts_mistake_is_named(words):
    _named(ex.check_pair_counts, STUDENT_PAIR_COUNTS[words], words)


def _merge_for_loop(ids, pair, new_id):  # a for loop cannot skip the pair's second id
    out = []
    for i in range(len(ids)):
        out.append(new_id if tuple(ids[i:i + 2]) == pair else ids[i])
    return out


def _merge_stops_early(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _merge_from_the_right(ids, pair, new_id):
    out, i = [], len(ids) - 1
    while i >= 0:
        if i > 0 and (ids[i - 1], ids[i]) == pair:
            out.insert(0, new_id)
            i -= 2
        else:
            out.insert(0, ids[i])
            i -= 1
    return out


STUDENT_MERGE = {
    "the pair's second id is kept too": _merge_for_loop,
    "the last id is dropped": _merge_stops_early,
    "scanned right to left": _merge_from_the_right,
}


@pytest.mark.parametrize("words", list(STUDENT_MERGE))
def test_each_merge_mistake_is_named(words):
    _named(ex.check_merge, STUDENT_MERGE[words], words)


def _wordpiece_variant(word, vocab, *, shortest=False, prefix="##", first="", unknown="word"):
    pieces, start = [], 0
    while start < len(word):
        ends = list(range(start + 1, len(word) + 1)) if shortest else list(range(len(word), start, -1))
        found = [e for e in ends if (first if start == 0 else prefix) + word[start:e] in vocab]
        if not found:
            if unknown == "word":
                return ["[UNK]"]
            if unknown == "piece":
                pieces.append("[UNK]")
            start += 1
            continue
        pieces.append((first if start == 0 else prefix) + word[start:found[0]])
        start = found[0]
    return pieces


STUDENT_WORDPIECE = {
    "the shortest piece is taken first": lambda w, v: _wordpiece_variant(w, v, shortest=True),
    "the ## prefix is left out": lambda w, v: _wordpiece_variant(w, v, prefix=""),
    "the first piece gets the ## prefix too": lambda w, v: _wordpiece_variant(w, v, first="##"),
    "only the unmatched character becomes [UNK]": lambda w, v: _wordpiece_variant(w, v, unknown="piece"),
    "the unmatched character is skipped": lambda w, v: _wordpiece_variant(w, v, unknown="skip"),
}


@pytest.mark.parametrize("words", list(STUDENT_WORDPIECE))
def test_each_wordpiece_mistake_is_named(words):
    _named(ex.check_wordpiece_split, STUDENT_WORDPIECE[words], words)


STUDENT_BITS = {
    "not converted to bits": lambda nll, n: nll / n,
    "multiplied by ln 2": lambda nll, n: nll / n * math.log(2),
    "divides by log10(2)": lambda nll, n: nll / n / math.log10(2),
    "bits per text, not per character": lambda nll, n: nll / math.log(2),
}


@pytest.mark.parametrize("words", list(STUDENT_BITS))
def test_each_bits_per_char_mistake_is_named(words):
    _named(ex.check_bits_per_char, STUDENT_BITS[words], words)


@pytest.mark.parametrize("table, students", [
    (ex.PAIR_COUNTS_MISTAKES, STUDENT_PAIR_COUNTS), (ex.MERGE_MISTAKES, STUDENT_MERGE),
    (ex.WORDPIECE_MISTAKES, STUDENT_WORDPIECE), (ex.BITS_PER_CHAR_MISTAKES, STUDENT_BITS),
])
def test_every_declared_mistake_has_a_student_version(table, students):
    assert {d for d in table for words in students if words in d} == set(table)


def test_an_unwritten_answer_is_reported():
    def stub(*args):
        raise NotImplementedError

    for check in (ex.check_pair_counts, ex.check_merge, ex.check_wordpiece_split, ex.check_bits_per_char):
        with pytest.raises(ExerciseError, match="not written yet"):
            check(stub)


# ---- exercise 02.5: token counts predicted, then measured -------------------------------------------

@pytest.fixture(scope="module")
def digits_bpe():
    """A small byte-level BPE with split digits, trained on the start of the chapter's corpus (the
    notebook's is the same recipe on the whole training split)."""
    from roadmap_lib.chapters.ch02_tokenization_embeddings.study import corpus_split
    from roadmap_lib.tokenizers import BPETokenizer
    from roadmap_lib.tokenizers.byte_level import GPT2_DIGITS_PATTERN

    train_text, _ = corpus_split()
    return BPETokenizer(GPT2_DIGITS_PATTERN).train(train_text[:200_000], 512)


def utf8_tokens(text):
    return len(text.encode("utf-8"))


def test_token_counts_right_prediction_passes_and_prints_both(digits_bpe, capsys):
    ex.check_token_counts(utf8_tokens, digits_bpe)
    out = capsys.readouterr().out
    assert "Correct" in out and "predicted" in out and "measured" in out


def test_token_counts_are_measured_with_the_tokenizer_given(digits_bpe):
    from roadmap_lib.tokenizers import BPETokenizer

    plain = BPETokenizer().train("1983 1983 1983 2026 2026 " * 50, 300)  # learns digit-run merges
    with pytest.raises(ExerciseError, match=r"predict_tokens\('1983'\)"):
        ex.check_token_counts(utf8_tokens, plain)
    with pytest.raises(TypeError, match="tokenizer: expected a tokenizer with encode"):
        ex.check_token_counts(utf8_tokens, None)


def _digit_runs_as_one(text):
    count, in_run = 0, False
    for c in text:
        if c.isdigit():
            count += not in_run
            in_run = True
        else:
            count += len(c.encode("utf-8"))
            in_run = False
    return count


STUDENT_TOKENS = {
    "a run of digits is counted as one token": _digit_runs_as_one,
    "one token per character": lambda text: len(text),
    "counted as 2 bytes": lambda text: sum(2 if ord(c) > 127 else 1 for c in text),
    "counted as 3 bytes": lambda text: len(text) + 2 * sum(not c.isascii() for c in text),
}


@pytest.mark.parametrize("words", list(STUDENT_TOKENS))
def test_each_token_count_mistake_is_named(digits_bpe, words):
    with pytest.raises(ExerciseError, match="likely mistake: .*" + re.escape(words)):
        ex.check_token_counts(STUDENT_TOKENS[words], digits_bpe)


def test_every_token_count_mistake_has_a_student_version():
    declared = ex.TOKEN_COUNT_MISTAKES
    assert {d for d in declared for w in STUDENT_TOKENS if w in d} == set(declared)


def test_an_unwritten_token_prediction_is_reported(digits_bpe):
    def stub(text):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not written yet"):
        ex.check_token_counts(stub, digits_bpe)
