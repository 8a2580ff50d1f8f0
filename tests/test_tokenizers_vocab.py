"""The word and character tokenizers, and the vocabularies of the shipped checkpoints built on them.

The checkpoints in data/zoo store their vocabulary as the list of tokens in id order (``vocab`` in
their JSON record); a model is only as good as the ids it was trained on, so every vocabulary class
must rebuild exactly that list and encode text to the ids the model saw. The expected ids come
from small reference encoders written out here, independently of the library.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from roadmap_lib import DATA_DIR
from roadmap_lib.chapters.ch05_encoder_decoder import translation as ch05
from roadmap_lib.chapters.ch06_encoder_only import pretrain as ch06
from roadmap_lib.chapters.ch08_text_to_text import common as ch08
from roadmap_lib.data import CharVocab, load_task, load_text
from roadmap_lib.tokenizers import CharTokenizer, Tokenizer, WordTokenizer, load
from roadmap_lib.tokenizers.word import frequent_words, normalize_word

ZOO = DATA_DIR / "zoo"
T2T = sorted(p.stem for p in ZOO.glob("t2t-*.json"))


def record(name: str) -> dict:
    return json.loads((ZOO / f"{name}.json").read_text(encoding="utf-8"))


def ref_normalize(word: str) -> str:
    # The normalisation the word-level checkpoints were trained with (chapter 06), written out.
    return word.lower().strip(".,;:!?\"'()[]")


@pytest.fixture(scope="module")
def samples() -> list[str]:
    """About 50 texts: corpus lines, both sides of translation pairs, acceptability sentences,
    and a few with literal special tokens, odd case and punctuation."""
    rng = random.Random(0)
    lines = [ln for ln in load_text().splitlines() if ln.strip()]
    trans = load_task("translation", "test")
    accept = load_task("acceptability", "test")
    return (rng.sample(lines, 15) + [r["src"] for r in rng.sample(trans, 10)]
            + [r["tgt"] for r in rng.sample(trans, 10)] + [r["text"] for r in rng.sample(accept, 10)]
            + ["the [MASK] is a hacker .", "<mask> of the <extra_id_0> file </s>",
               "translate English to Zetan: the hacker", "Unknownword, (quoted) \"THE\" file!",
               "<unk> <pad> <eos> <bos> [CLS] x", ""])


# ----------------------------------------------------------------------------- shipped vocabularies
def test_char_vocab_of_gpt_char_jargon(samples):
    chars = record("gpt-char-jargon")["vocab"]  # a string: id i is chars[i]
    vocab = CharVocab(chars)
    assert vocab.chars == chars and vocab.itos == list(chars) and len(vocab) == len(chars)
    assert CharVocab.from_text(load_text()).chars == chars  # rebuilt from the corpus
    index = {c: i for i, c in enumerate(chars)}
    for text in samples:
        if all(c in index for c in text):
            ids = vocab.encode(text)
            assert ids.dtype == torch.long and ids.tolist() == [index[c] for c in text]
            assert vocab.decode(ids) == text


def test_word_vocab_of_transformer_zetan(samples):
    rec = record("transformer-zetan")["vocab"]
    vocab = ch05.WordVocab(rec)
    assert vocab.itos == rec and len(vocab) == len(rec)
    assert ch05.WordVocab.from_rows(load_task("translation", "train")).itos == rec
    stoi = {w: i for i, w in enumerate(rec)}
    for text in samples:
        ids = vocab.encode(text)
        assert ids == [stoi.get(w, ch05.UNK) for w in text.split()]
        # decode: words up to the first <eos>, special tokens (<unk> too) dropped
        want = " ".join(rec[i] for i in ids if i >= len(ch05.SPECIALS))
        assert vocab.decode(ids + [ch05.EOS, 5]) == want == vocab.decode(torch.tensor(ids))


def test_word_vocab_of_bert_word_jargon(samples):
    rec = record("bert-word-jargon")["vocab"]
    vocab = ch06.WordVocab(rec)
    assert vocab.itos == rec and len(vocab) == len(rec)
    sentences = ch06.pretraining_sentences()
    order = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(ch06.SEED))
    assert ch06.WordVocab.from_sentences([sentences[i] for i in order.tolist()]).itos == rec
    stoi = {w: i for i, w in enumerate(rec)}
    for text in samples:
        if len(text.split()) > ch06.CONTEXT - 2:
            with pytest.raises(ValueError, match="expected at most 30 words"):
                vocab.encode(text)
            continue
        ids = [ch06.CLS] + [ch06.MASK if w == "[MASK]" else stoi.get(ref_normalize(w), ch06.UNK)
                            for w in text.split()] + [ch06.SEP]
        assert vocab.encode(text).tolist() == ids + [ch06.PAD] * (ch06.CONTEXT - len(ids))
        assert vocab.encode(text, 40).tolist() == ids + [ch06.PAD] * (40 - len(ids))
        assert vocab.decode(torch.tensor(ids)) == [rec[i] for i in ids]


@pytest.mark.parametrize("name", T2T)
def test_t2t_vocab_of_text_to_text_checkpoints(name, samples):
    rec = record(name)["vocab"]
    vocab = ch08.T2TVocab(rec)
    assert vocab.itos == rec and len(vocab) == len(rec)
    stoi = {w: i for i, w in enumerate(rec)}
    for text in samples:
        ids = vocab.encode(text)
        assert ids == [stoi[w] if w in ch08.SPECIALS else stoi.get(ref_normalize(w), ch08.UNK)
                       for w in text.split()]
        # decode: words up to the first </s>; <pad> dropped, other specials but <unk> dropped
        # unless keep_special
        before_eos = ids[: ids.index(ch08.EOS)] if ch08.EOS in ids else ids
        words = " ".join(rec[i] for i in before_eos if i == ch08.UNK or i >= len(ch08.SPECIALS))
        assert vocab.decode(ids + [ch08.EOS, 30]) == words == vocab.normalized(text)
        with_specials = [ch08.PAD, ch08.MASK, ch08.SENTINELS[0]] + ids
        before_eos = with_specials[: with_specials.index(ch08.EOS)] if ch08.EOS in ids else with_specials
        assert vocab.decode(with_specials, keep_special=True) == " ".join(
            rec[i] for i in before_eos if i != ch08.PAD)


def test_t2t_vocab_rebuilt_from_the_corpus():
    assert ch08.corpus_vocab().itos == record("t2t-span")["vocab"]


# ----------------------------------------------------------------------------- WordTokenizer
def test_word_tokenizer_ids_normalisation_and_specials():
    tok = WordTokenizer(["the", "file", "the", "", "<unk>", "jargon"], special_tokens=["<pad>", "<unk>"],
                        normalize=normalize_word)
    assert tok.itos == ["<pad>", "<unk>", "the", "file", "jargon"] and len(tok) == tok.vocab_size == 5
    assert tok.encode("The (Jargon) FILE, hackers <pad>") == [2, 4, 3, 1, 0]
    assert tok.decode([2, 4, 1, 0]) == "the jargon <unk> <pad>"
    assert tok.decode([2, 4, 1, 3], stop_at="<unk>") == "the jargon"
    assert tok.decode([0, 2, 1], skip=["<pad>"]) == "the <unk>"
    assert tok.tokenize("the hacker") == ["the", "<unk>"]
    only_mask = WordTokenizer(["mask"], special_tokens=["[UNK]", "[MASK]"], unk_token="[UNK]",
                              normalize=normalize_word, literal_specials=["[MASK]"])
    assert only_mask.encode("[MASK] [mask] [UNK]") == [1, 2, 0]
    strict = WordTokenizer(["a"], special_tokens=["<s>"], unk_token=None)
    with pytest.raises(ValueError, match="'b' is not in the vocabulary"):
        strict.encode("a b")
    with pytest.raises(ValueError, match="unk_token: expected one of the special tokens"):
        WordTokenizer(["a"], special_tokens=["<s>"])
    with pytest.raises(ValueError, match="literal_specials"):
        WordTokenizer(["a"], literal_specials=["<mask>"])
    with pytest.raises(TypeError, match="words: expected an iterable of words, got a str"):
        WordTokenizer("abc")
    with pytest.raises(TypeError, match="text: expected a str"):
        tok.encode(["the"])
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([5])


def test_word_tokenizer_trains_on_frequent_words():
    text = ["b a, c", "A b.", "b d"]
    assert frequent_words(text, 2, normalize_word) == ["b", "a"]
    assert frequent_words(text, 10) == ["b", "A", "a,", "b.", "c", "d"]  # ties alphabetical
    tok = WordTokenizer(normalize=normalize_word).train(text, vocab_size=3)
    assert tok.itos == ["<unk>", "b", "a"]
    with pytest.raises(ValueError, match="vocab_size: expected at least 2"):
        WordTokenizer().train(text, vocab_size=1)


def test_word_tokenizer_save_and_load(tmp_path):
    tok = WordTokenizer(["file", "the"], special_tokens=["<pad>", "<unk>", "[MASK]"],
                        normalize=normalize_word, literal_specials=["[MASK]"])
    tok.save(tmp_path / "word.json")
    again = load(tmp_path / "word.json")
    assert type(again) is WordTokenizer and again.itos == tok.itos
    assert again.normalize is normalize_word and again.literal_specials == {"[MASK]"}
    assert again.encode("The [MASK] <pad> FILE!") == tok.encode("The [MASK] <pad> FILE!")
    # A chapter's vocabulary saves and loads as itself.
    t2t = ch08.T2TVocab(["the", "file"])
    t2t.save(tmp_path / "t2t.json")
    back = ch08.T2TVocab.load(tmp_path / "t2t.json")
    assert type(back) is ch08.T2TVocab and back.itos == t2t.itos
    assert back.decode(back.encode("the <mask> file"), keep_special=True) == "the <mask> file"
    with pytest.raises(TypeError, match="holds a WordTokenizer, not a CharTokenizer"):
        CharTokenizer.load(tmp_path / "word.json")
    with pytest.raises(ValueError, match="cannot be saved"):
        WordTokenizer(normalize=str.lower).to_dict()


# ----------------------------------------------------------------------------- characters
def test_char_tokenizer_without_unknown_token_and_char_vocab(tmp_path):
    tok = CharTokenizer(unk_token=None).train("hello world")
    assert tok.itos == list(" dehlorw") and tok.encode("old") == [5, 4, 1]
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        tok.encode("zoo")
    vocab = CharVocab.from_text("hello world")
    assert isinstance(vocab, CharTokenizer) and isinstance(vocab, Tokenizer)
    assert vocab.itos == tok.itos and vocab.encode("old").tolist() == [5, 4, 1]
    vocab.save(tmp_path / "chars.json")
    assert type(load(tmp_path / "chars.json")) is CharTokenizer
    back = CharVocab.load(tmp_path / "chars.json")
    assert type(back) is CharVocab and back.chars == " dehlorw"
    CharTokenizer().train("ab").save(tmp_path / "unk.json")
    with pytest.raises(ValueError, match="a CharVocab has none"):
        CharVocab.load(tmp_path / "unk.json")
    with pytest.raises(ValueError, match="expected distinct characters"):
        CharVocab("aa")
