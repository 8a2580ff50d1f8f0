"""The regex automaton against Python's re, and constrained decoding producing only matches."""

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.constrained import Regex, RegexConstraint, parse
from roadmap_lib.decoding import generate
from roadmap_lib.logits_processors import make_pipeline

ALPHABET = "ab1-."

atoms = st.sampled_from(["a", "b", "1", r"\d", r"\.", ".", "[ab]", "[^a]", "[a-b1]", r"\-", r"\w"])


def _pattern(depth=2):
    if depth == 0:
        return atoms
    sub = _pattern(depth - 1)
    return st.one_of(
        atoms,
        st.lists(sub, min_size=1, max_size=3).map("".join),
        st.tuples(sub, sub).map(lambda t: f"({t[0]}|{t[1]})"),
        st.tuples(sub, st.sampled_from(["*", "+", "?", "{2}", "{0,2}", "{1,}"])).map(lambda t: f"({t[0]}){t[1]}"),
    )


@settings(max_examples=150, deadline=None)
@given(pattern=_pattern(), texts=st.lists(st.text(ALPHABET, max_size=6), min_size=1, max_size=8))
def test_fullmatch_equals_python_re(pattern, texts):
    r = Regex(pattern)
    for t in texts:
        assert r.fullmatch(t) == (re.fullmatch(pattern, t) is not None), (pattern, t)


@settings(max_examples=60, deadline=None)
@given(pattern=_pattern(), text=st.text(ALPHABET, max_size=6))
def test_dead_state_means_no_completion(pattern, text):
    """A prefix the walk keeps alive can be completed; a dead one cannot (checked by search)."""
    r = Regex(pattern)
    alive = bool(r.step(r.start, text))
    completions = [text + "".join(s) for n in range(5) for s in _words(n)]
    found = any(re.fullmatch(pattern, c) for c in completions)
    if found:
        assert alive
    if not alive:
        assert not found


def _words(n):
    if n == 0:
        yield ()
        return
    for w in _words(n - 1):
        for c in "ab1":
            yield (*w, c)


def test_constrained_sampling_only_produces_matches():
    chars = list("0123456789-{}\":, abcdefghijklmnopqrstuvwxyz\n")
    pattern = r'\{"n": "[a-z]{1,6}", "y": (19|20)\d\d\}'
    g = torch.Generator().manual_seed(0)
    table = torch.randn(len(chars), len(chars), generator=g) * 3  # a random bigram "model"
    model = lambda ids: table[ids]
    prompt = torch.full((16, 1), chars.index("\n"))
    c = RegexConstraint(pattern, chars, prompt_length=1)
    out = generate(model, prompt, 40, processors=[c], do_sample=True, generator=g, stopping=[c.done],
                   pad_token_id=chars.index("\n"))
    texts = ["".join(chars[i] for i in row[1:].tolist()).rstrip("\n") for row in out]
    assert all(re.fullmatch(pattern, t) for t in texts), texts
    assert len(set(texts)) > 8  # and they are not all the same string
    free = generate(model, prompt, 30, processors=make_pipeline(), do_sample=True, generator=g)
    assert not any(re.fullmatch(pattern, "".join(chars[i] for i in row[1:].tolist())) for row in free)


def test_constraint_with_multi_character_tokens():
    tokens = ["20", "2", "0", "-", "1", "12", "x"]
    c = RegexConstraint(r"\d{4}-\d{2}", tokens, prompt_length=0)
    state = c.state(torch.tensor([0, 1]))  # "202"
    assert [tokens[i] for i in c.allowed(state).nonzero().flatten().tolist()] == ["2", "0", "1"]
    assert c.done(torch.tensor([[0, 0, 3, 5]])).tolist() == [True]  # "2020-12": complete
    assert c.done(torch.tensor([[6]])).tolist() == [True]  # dead


@pytest.mark.parametrize("pattern,match", [
    ("(ab", "unclosed '\\('"), ("ab)", "unbalanced"), ("*a", "nothing to repeat"), ("[ab", "unclosed '\\['"),
    ("a{3,1}", "max < min"), ("a{x}", "expected"), (r"\q", "unsupported escape"), ("a\\", "ends with"),
])
def test_bad_patterns(pattern, match):
    with pytest.raises(ValueError, match=match):
        parse(pattern)


def test_bad_arguments():
    with pytest.raises(TypeError, match="pattern"):
        parse(3)
    with pytest.raises(ValueError, match="prompt_length"):
        RegexConstraint("a", ["a"], -1)
    with pytest.raises(ValueError, match="token_strings"):
        RegexConstraint("a", [], 0)
    with pytest.raises(ValueError, match="vocab size"):
        RegexConstraint("a", ["a", "b"], 0)(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 3))
