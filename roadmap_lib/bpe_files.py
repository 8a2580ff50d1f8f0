"""Byte-level BPE files: GPT-2's ``vocab.json`` + ``merges.txt`` and Hugging Face ``tokenizer.json``.

Both spell a token's bytes with GPT-2's printable characters (:func:`roadmap_lib.bpe.to_chars`).
``merges.txt`` is a ``#version`` line then one merge per line, ``left right``, in rank order; the
merged token must be in the vocabulary. Malformed files raise ValueError naming the line.
"""

from __future__ import annotations

import json

from .bpe import BYTE_TO_CHAR, CHAR_TO_BYTE, GPT2_PATTERN, from_chars, to_chars


def _build(cls, vocab: dict[str, int], merges: list[tuple[str, str]], specials: dict[str, int],
           pattern: str, where: str):
    tok = cls(pattern)
    tok.vocab, tok.special_tokens = {}, dict(specials)
    for s, i in vocab.items():
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise ValueError(f"{where}: token {s!r} has id {i!r}, expected a non-negative int")
        if s in specials:
            if specials[s] != i:
                raise ValueError(f"{where}: special token {s!r} has id {i} in the vocabulary "
                                 f"but {specials[s]} in added_tokens")
            continue
        bad = [c for c in s if c not in CHAR_TO_BYTE]
        if bad:
            raise ValueError(f"{where}: token {s!r} (id {i}) is not spelled in GPT-2's byte "
                             f"characters (has {bad[0]!r}); is it a special token?")
        if i in tok.vocab:
            raise ValueError(f"{where}: id {i} is used twice ({to_chars(tok.vocab[i])!r}, {s!r})")
        tok.vocab[i] = from_chars(s)
    clash = set(tok.vocab) & set(specials.values())
    if clash:
        raise ValueError(f"{where}: special token ids {sorted(clash)} are also ordinary tokens")
    inverse = {t: i for i, t in tok.vocab.items()}
    missing = [b for b in range(256) if bytes([b]) not in inverse]
    if missing:
        raise ValueError(f"{where}: byte-level BPE needs a token for each of the 256 bytes; "
                         f"missing {len(missing)}, e.g. {BYTE_TO_CHAR[missing[0]]!r} "
                         f"(byte {missing[0]})")
    tok.byte_ids = [inverse[bytes([b])] for b in range(256)]
    tok.ranks = {}
    for r, (a, b) in enumerate(merges):
        ta, tb = vocab.get(a), vocab.get(b)
        tm = vocab.get(a + b)
        if ta is None or tb is None or tm is None:
            absent = [x for x, t in ((a, ta), (b, tb), (a + b, tm)) if t is None]
            raise ValueError(f"merges: merge {r + 1} ({a!r} {b!r}) uses tokens that are not in "
                             f"the vocabulary: {absent}")
        tok.ranks.setdefault((ta, tb), (r, tm))
    tok._reset()
    return tok


def read_gpt2(cls, vocab_file, merges_file, special_tokens=(), pattern=GPT2_PATTERN):
    """Load GPT-2's two files; ``special_tokens`` must be entries of ``vocab.json``."""
    with open(vocab_file, encoding="utf-8") as f:
        try:
            vocab = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{vocab_file}: not valid JSON ({err})") from None
    if not isinstance(vocab, dict):
        raise ValueError(f"{vocab_file}: expected a JSON object token -> id, got "
                         f"{type(vocab).__name__}")
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
    return _build(cls, vocab, merges, {s: vocab[s] for s in special_tokens}, pattern,
                  str(vocab_file))


def _pre_tokenizer(pre: dict | None) -> tuple[str, bool]:
    """(regex pattern, add_prefix_space) of the pre-tokenizers we implement."""
    if pre and pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return GPT2_PATTERN, bool(pre.get("add_prefix_space", False))
    if pre and pre.get("type") == "Sequence":
        steps = pre.get("pretokenizers", [])
        if (len(steps) == 2 and steps[0].get("type") == "Split"
                and "Regex" in steps[0].get("pattern", {})
                and steps[0].get("behavior") == "Isolated" and not steps[0].get("invert")
                and steps[1].get("type") == "ByteLevel" and not steps[1].get("use_regex", True)):
            return steps[0]["pattern"]["Regex"], bool(steps[1].get("add_prefix_space", False))
    raise ValueError(f"pre_tokenizer: expected ByteLevel (or Split regex + ByteLevel), got {pre}")


def bpe_from_hf_dict(cls, d: dict):
    model = d.get("model") or {}
    if model.get("type") != "BPE":
        raise ValueError(f"model.type: expected 'BPE', got {model.get('type')!r}")
    for opt in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(opt):
            raise ValueError(f"model.{opt}: not supported (got {model[opt]!r})")
    pattern, prefix = _pre_tokenizer(d.get("pre_tokenizer"))
    merges = []
    for n, m in enumerate(model.get("merges", []), 1):
        pair = m.split(" ") if isinstance(m, str) else list(m)
        if len(pair) != 2 or not all(isinstance(x, str) and x for x in pair):
            raise ValueError(f"model.merges: merge {n}: expected two tokens, got {m!r}")
        merges.append(tuple(pair))
    specials = {t["content"]: t["id"] for t in d.get("added_tokens", [])}
    tok = _build(cls, model.get("vocab", {}), merges, specials, pattern, "model.vocab")
    tok.ignore_merges = bool(model.get("ignore_merges", False))
    tok.add_prefix_space = prefix
    return tok


def hf_bpe_dict(tok) -> dict:
    if tok.pattern == GPT2_PATTERN:
        pre = {"type": "ByteLevel", "add_prefix_space": tok.add_prefix_space, "trim_offsets": True,
               "use_regex": True}
    else:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": tok.pattern}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": tok.add_prefix_space, "trim_offsets": True,
             "use_regex": False}]}
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for s, i in sorted(tok.special_tokens.items(), key=lambda kv: kv[1])]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None, "pre_tokenizer": pre, "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": tok.ignore_merges,
                  "vocab": {to_chars(t): i for i, t in sorted(tok.vocab.items())},
                  "merges": [[to_chars(tok.vocab[a]), to_chars(tok.vocab[b])]
                             for a, b in tok.merges]},
    }
