"""Byte-level spelling, shared by BPE and its file formats: GPT-2's pattern and byte characters.

GPT-2 cuts text into pre-tokens with :data:`GPT2_PATTERN` (words with their leading space, runs of
digits, punctuation, whitespace). Its files (``vocab.json``, ``merges.txt``, and Hugging Face's
``tokenizer.json``) spell a token's bytes with printable characters: :func:`bytes_to_unicode` maps
each of the 256 bytes to one, reversibly. This module turns those spellings back into bytes and ids
(:func:`parse_vocab`) and describes the matching ``tokenizer.json`` pre-tokenizer; it knows nothing
of the tokenizer classes, so that :mod:`~roadmap_lib.tokenizers.bpe` and
:mod:`~roadmap_lib.tokenizers.bpe_files` both build on it.
"""

from __future__ import annotations

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
#: GPT-2's pattern with every digit its own pre-token, as Llama and PaLM split numbers: the same
#: pre-tokens as Hugging Face's ``Sequence([Digits(individual_digits=True), ByteLevel()])``, which
#: first cuts the text around each numeric character (``\p{N}``) and then applies GPT-2's pattern
#: to each piece. One regex does both: a digit alone (never with a leading space), and a run of
#: whitespace before a digit kept whole, as it is at the end of the piece before the cut.
GPT2_DIGITS_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?=\p{N})|"""
                       r"""\s+(?!\S)|\s+""")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 bytes to printable characters (vocab.json spells tokens
    with them): printable Latin-1 bytes map to themselves, the others to U+0100 onwards."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    table, n = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def to_chars(token: bytes) -> str:
    return "".join(BYTE_TO_CHAR[b] for b in token)


def from_chars(s: str) -> bytes:
    return bytes(CHAR_TO_BYTE[c] for c in s)


def parse_vocab(vocab: dict[str, int], merges: list[tuple[str, str]], specials: dict[str, int],
                where: str) -> tuple[dict[int, bytes], list[int], dict[tuple[int, int], tuple[int, int]]]:
    """A byte-level vocabulary as files spell it, checked: ``(id -> bytes, the id of each byte,
    (left id, right id) -> (rank, merged id))``. ``specials`` (string -> id) may appear in
    ``vocab`` with the same id. Malformed input raises ValueError naming ``where`` or the merge."""
    ids: dict[int, bytes] = {}
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
        if i in ids:
            raise ValueError(f"{where}: id {i} is used twice ({to_chars(ids[i])!r}, {s!r})")
        ids[i] = from_chars(s)
    clash = set(ids) & set(specials.values())
    if clash:
        raise ValueError(f"{where}: special token ids {sorted(clash)} are also ordinary tokens")
    inverse = {t: i for i, t in ids.items()}
    missing = [b for b in range(256) if bytes([b]) not in inverse]
    if missing:
        raise ValueError(f"{where}: byte-level BPE needs a token for each of the 256 bytes; "
                         f"missing {len(missing)}, e.g. {BYTE_TO_CHAR[missing[0]]!r} "
                         f"(byte {missing[0]})")
    byte_ids = [inverse[bytes([b])] for b in range(256)]
    ranks: dict[tuple[int, int], tuple[int, int]] = {}
    for r, (a, b) in enumerate(merges):
        ta, tb = vocab.get(a), vocab.get(b)
        tm = vocab.get(a + b)
        if ta is None or tb is None or tm is None:
            absent = [x for x, t in ((a, ta), (b, tb), (a + b, tm)) if t is None]
            raise ValueError(f"merges: merge {r + 1} ({a!r} {b!r}) uses tokens that are not in "
                             f"the vocabulary: {absent}")
        ranks.setdefault((ta, tb), (r, tm))
    return ids, byte_ids, ranks


def pre_tokenizer_dict(pattern: str, add_prefix_space: bool) -> dict:
    """The ``tokenizer.json`` pre-tokenizer for ``pattern``: ByteLevel itself for GPT-2's, else a
    Split on the pattern followed by a ByteLevel without its own regex."""
    if pattern == GPT2_PATTERN:
        return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": True,
                "use_regex": True}
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": True,
         "use_regex": False}]}


def parse_pre_tokenizer(pre: dict | None) -> tuple[str, bool]:
    """(regex pattern, add_prefix_space) of the pre-tokenizers :func:`pre_tokenizer_dict` writes."""
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


__all__ = ["BYTE_TO_CHAR", "CHAR_TO_BYTE", "GPT2_DIGITS_PATTERN", "GPT2_PATTERN", "bytes_to_unicode",
           "from_chars", "parse_pre_tokenizer", "parse_vocab", "pre_tokenizer_dict", "to_chars"]
