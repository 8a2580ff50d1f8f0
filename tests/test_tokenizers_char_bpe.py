"""Character-level BPE with byte fallback (roadmap_lib.tokenizers.char_bpe) against Hugging Face
``tokenizers``' ``models.BPE(byte_fallback=True)`` on the same vocabulary and merges: ids and decoded
text, on held-out prose, on characters never seen in training and on random strings."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer

from roadmap_lib import DATA_DIR
from roadmap_lib.tokenizers.base import load
from roadmap_lib.tokenizers.char_bpe import BYTE_TOKENS, SPACE, CharBPETokenizer

TEXT = (DATA_DIR / "jargon.txt").read_text(encoding="utf-8")
TRAIN, HELD = TEXT[:12_000], TEXT[-3_000:]
UNSEEN = "kludge 中文 🎉 Привет"


@pytest.fixture(scope="module")
def pair():
    """(ours, tokenizers') with byte fallback, trained on the start of the Jargon File."""
    ours = CharBPETokenizer().train(TRAIN, 1 + 256 + 120 + 150)
    return ours, HFTokenizer.from_str(json.dumps(ours.to_hf_dict()))


@pytest.fixture(scope="module")
def pair_no_fallback():
    ours = CharBPETokenizer(byte_fallback=False).train(TRAIN, 1 + 120 + 60)
    return ours, HFTokenizer.from_str(json.dumps(ours.to_hf_dict()))


@pytest.mark.parametrize("text", [HELD, UNSEEN, "", " ", "  two  spaces ", "a\nb\tc", "naïve café", "▁x",
                                  "\U0001F600" * 3, "x" * 300])
def test_ids_and_decode_equal_tokenizers(pair, text):
    ours, theirs = pair
    ids = ours.encode(text)
    assert ids == theirs.encode(text).ids
    assert ours.decode(ids) == theirs.decode(ids)


def test_unseen_characters_are_their_utf8_bytes_and_round_trip(pair):
    ours, _ = pair
    assert not set("中文🎉П") & set(TRAIN)
    pieces = ours.tokenize("中文🎉")
    assert pieces[0] == SPACE and bytes(int(p[3:5], 16) for p in pieces[1:]) == "中文🎉".encode()
    assert ours.decode(ours.encode(UNSEEN)) == UNSEEN


def test_without_fallback_unseen_characters_are_unk_like_tokenizers(pair_no_fallback):
    ours, theirs = pair_no_fallback
    ids = ours.encode(UNSEEN)
    assert ids == theirs.encode(UNSEEN).ids
    assert ours.decode(ids) == theirs.decode(ids) == "kludge <unk><unk> <unk> " + "<unk>" * 6
    assert not any(t in ours.vocab for t in BYTE_TOKENS)


def test_a_byte_run_that_is_not_utf8_gives_one_replacement_per_byte_token(pair):
    ours, theirs = pair
    ids = [ours.vocab["<0xE4>"], ours.vocab["<0xB8>"], ours.vocab["k"], ours.vocab["<0xF0>"]]
    assert ours.decode(ids) == theirs.decode(ids) == "\ufffd\ufffdk\ufffd"


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from("the hacker kludge,.\n 中🎉éП▁"), max_size=40) | st.text(max_size=20))
def test_random_strings_equal_tokenizers(pair, text):
    ours, theirs = pair
    ids = ours.encode(text)
    assert ids == theirs.encode(text).ids
    assert ours.decode(ids) == theirs.decode(ids)
    if SPACE not in text:  # ▁ in the input reads back as a space, as in Llama 2's tokenizer
        assert ours.decode(ids) == text


def test_training_learns_frequent_pieces_and_ids_are_laid_out(pair):
    ours, _ = pair
    assert ours.vocab["<unk>"] == 0 and ours.vocab["<0x00>"] == 1 and ours.vocab["<0xFF>"] == 256
    assert ours.merges[0] == (SPACE, "t") and SPACE + "the" in ours.vocab
    assert len(ours.encode(HELD)) < 0.65 * len(HELD)  # measured 0.61 tokens per character


def test_save_and_load(pair, tmp_path):
    ours, _ = pair
    ours.save(tmp_path / "char_bpe.json")
    back = load(tmp_path / "char_bpe.json")
    assert isinstance(back, CharBPETokenizer) and back.encode(HELD) == ours.encode(HELD)


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="byte_fallback: expected a bool"):
        CharBPETokenizer(byte_fallback="yes")
    with pytest.raises(ValueError, match="vocab_size"):
        CharBPETokenizer().train("abc", 10)
    with pytest.raises(ValueError, match="no vocabulary yet"):
        CharBPETokenizer().encode("abc")
    with pytest.raises(ValueError, match="vocab: expected the token '<unk>'"):
        CharBPETokenizer.from_vocab({"a": 0}, [], byte_fallback=False)
    with pytest.raises(ValueError, match="256 byte tokens, 256 are missing"):
        CharBPETokenizer.from_vocab({"<unk>": 0, "a": 1}, [])
    with pytest.raises(ValueError, match="merges: merge 1"):
        CharBPETokenizer.from_vocab({"<unk>": 0, "a": 1}, [("a", "a")], byte_fallback=False)
    tok = CharBPETokenizer.from_vocab({"<unk>": 0, "a": 1, SPACE: 2}, [], byte_fallback=False)
    with pytest.raises(TypeError, match="text: expected a str"):
        tok.encode(b"a")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.id_to_token(7)
