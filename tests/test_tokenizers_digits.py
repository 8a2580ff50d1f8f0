"""Digit splitting in byte-level BPE (``GPT2_DIGITS_PATTERN``), checked against Hugging Face
``tokenizers``' ``Digits(individual_digits=True)`` followed by its ``ByteLevel`` pre-tokenizer."""

from __future__ import annotations

import json

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib import data_path
from roadmap_lib.tokenizers.bpe import BPETokenizer
from roadmap_lib.tokenizers.byte_level import (
    GPT2_DIGITS_PATTERN,
    GPT2_PATTERN,
    from_chars,
    to_chars,
)

pytest.importorskip("tokenizers")
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

CORPUS = data_path("jargon.txt").read_text(encoding="utf-8")
TRAIN = CORPUS[:120_000]
HELD_OUT = CORPUS[700_000:740_000]
HF_DIGITS = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])


def hf_pieces(text: str) -> list[str]:
    return [from_chars(p).decode("utf-8") for p, _ in HF_DIGITS.pre_tokenize_str(text)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab Z\n\t'sv.,-+=0123456789½²٣中é🎉") + ["  ", "'s", "'ll"]),
                max_size=30).map("".join))
def test_digits_pattern_pre_tokens_equal_hf(text):
    assert regex.findall(GPT2_DIGITS_PATTERN, text) == hf_pieces(text)


def test_digits_pattern_on_numbers():
    assert regex.findall(GPT2_DIGITS_PATTERN, "x=1234  56") == ["x", "=", "1", "2", "3", "4", "  ", "5", "6"]
    assert regex.findall(GPT2_PATTERN, "x=1234  56") == ["x", "=", "1234", " ", " 56"]


@pytest.fixture(scope="module")
def digits_bpe():
    return BPETokenizer(GPT2_DIGITS_PATTERN).train(TRAIN, 600, special_tokens=["<|endoftext|>"])


def test_digits_bpe_merges_and_encoding_equal_hf(digits_bpe):
    """Trained on the same text, tokenizers' Digits + ByteLevel pipeline learns the same merges,
    and encodes held-out text into the same tokens; our tokenizer.json loads into tokenizers."""
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = HF_DIGITS
    hf.train_from_iterator([TRAIN], trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    theirs = json.loads(hf.to_str())["model"]["merges"]
    ours = [[to_chars(digits_bpe.vocab[a]), to_chars(digits_bpe.vocab[b])] for a, b in digits_bpe.merges]
    assert ours == theirs
    ids = digits_bpe.encode(HELD_OUT)
    assert [hf.id_to_token(i) for i in hf.encode(HELD_OUT).ids] == [to_chars(digits_bpe.vocab[i]) for i in ids]
    assert Tokenizer.from_str(json.dumps(digits_bpe.to_dict())).encode(HELD_OUT).ids == ids
    assert not any(regex.search(r"\d\d", digits_bpe.decode([i])) for i in set(ids))  # no multi-digit token


def test_digits_bpe_files_keep_the_pattern(digits_bpe, tmp_path):
    digits_bpe.save(tmp_path / "t.json")
    again = BPETokenizer.load(tmp_path / "t.json")
    assert again.pattern == GPT2_DIGITS_PATTERN
    assert again.encode("pi is 3.14159, e is 2.71828") == digits_bpe.encode("pi is 3.14159, e is 2.71828")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["ab", " ", "  ", "\n", "1", "23", "x'", "<|endoftext|>", "é", "½"]),
                max_size=20), st.randoms(use_true_random=False))
def test_digits_bpe_encode_iter_equals_encode(digits_bpe, parts, rnd):
    text = "".join(parts)
    cuts = sorted(rnd.sample(range(len(text) + 1), min(len(text) + 1, 4)))
    chunks = [text[i:j] for i, j in zip([0] + cuts, cuts + [len(text)])]
    assert [i for c in digits_bpe.encode_iter(chunks) for i in c] == digits_bpe.encode(text)
