"""Constrained decoding: a regular expression enforced by masking logits with a finite-state machine.

The idea behind grammar-constrained generation (Outlines, llama.cpp grammars, transformers'
``prefix_allowed_tokens_fn``): compile the pattern into an automaton, walk it along the tokens
generated so far, and before each step set to ``-inf`` every token that would lead the automaton
into a dead state (one from which no accepting state can be reached). Whatever the model prefers,
the output can then only be a prefix of a valid string, and once it stops in an accepting state it is
a valid string.

Three parts, each short:

1. :func:`parse` turns a small regex dialect into a tree: literals and escapes (``\\d \\w \\s``,
   ``\\.``), ``.``, classes ``[a-z0-9_]`` and ``[^...]``, groups ``(...)``, alternation ``|``,
   and the quantifiers ``* + ?`` ``{n}`` ``{n,}`` ``{n,m}``.
2. :class:`Regex` builds Thompson's NFA {cite}`thompson1968regular` from the tree; a set of NFA
   states is one state of the equivalent DFA, built lazily as the walk reaches it.
3. :class:`RegexConstraint` is a logits processor (``(ids, scores) -> scores``) that masks every
   token whose text leads to a dead state, and a stopping criterion (``done(ids)``) for rows whose
   match is complete.

``tests/test_constrained.py`` checks :meth:`Regex.fullmatch` against Python's ``re.fullmatch`` on
random patterns and strings (hypothesis), and that constrained sampling from a random model only
produces matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# --- 1. parsing: pattern -> tree -------------------------------------------------------------------

_CLASSES = {
    "d": frozenset("0123456789"),
    "w": frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"),
    "s": frozenset(" \t\n\r\f\v"),
}


@dataclass(frozen=True)
class CharSet:
    """The characters ``chars``, or (``negated``) every character except them."""

    chars: frozenset
    negated: bool = False

    def __contains__(self, c: str) -> bool:
        return (c in self.chars) != self.negated


# tree nodes: ("set", CharSet) | ("cat", [nodes]) | ("alt", [nodes]) | ("rep", node, min, max|None)


class _Parser:
    def __init__(self, pattern: str):
        self.p, self.i = pattern, 0

    def error(self, what: str):
        return ValueError(f"pattern: {what} at position {self.i} of {self.p!r}")

    def peek(self):
        return self.p[self.i] if self.i < len(self.p) else None

    def take(self):
        c = self.peek()
        self.i += 1
        return c

    def alternation(self):
        branches = [self.concatenation()]
        while self.peek() == "|":
            self.take()
            branches.append(self.concatenation())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def concatenation(self):
        items = []
        while self.peek() is not None and self.peek() not in "|)":
            items.append(self.quantified())
        return ("cat", items)

    def quantified(self):
        node = self.atom()
        while self.peek() is not None and self.peek() in "*+?{":
            c = self.take()
            if c == "*":
                node = ("rep", node, 0, None)
            elif c == "+":
                node = ("rep", node, 1, None)
            elif c == "?":
                node = ("rep", node, 0, 1)
            else:
                node = ("rep", node, *self.braces())
        return node

    def braces(self):
        end = self.p.find("}", self.i)
        if end < 0:
            raise self.error("unclosed '{'")
        body, self.i = self.p[self.i:end], end + 1
        lo, _, hi = body.partition(",")
        try:
            lo_n = int(lo)
            hi_n = lo_n if "," not in body else (int(hi) if hi else None)
        except ValueError:
            raise self.error(f"expected {{n}}, {{n,}} or {{n,m}}, got {{{body}}}") from None
        if hi_n is not None and hi_n < lo_n:
            raise self.error(f"{{{body}}} has max < min")
        return lo_n, hi_n

    def atom(self):
        c = self.take()
        if c == "(":
            node = self.alternation()
            if self.take() != ")":
                raise self.error("unclosed '('")
            return node
        if c == "[":
            return ("set", self.char_class())
        if c == ".":
            return ("set", CharSet(frozenset("\n"), negated=True))
        if c == "\\":
            return ("set", self.escape())
        if c in "*+?{":
            raise self.error(f"nothing to repeat before {c!r}")
        if c in ")]":
            raise self.error(f"unbalanced {c!r}")
        return ("set", CharSet(frozenset(c)))

    def escape(self) -> CharSet:
        c = self.take()
        if c is None:
            raise self.error("pattern ends with '\\'")
        if c in _CLASSES:
            return CharSet(_CLASSES[c])
        if c.lower() in _CLASSES:
            return CharSet(_CLASSES[c.lower()], negated=True)
        if c.isalnum():
            raise self.error(f"unsupported escape \\{c}")
        return CharSet(frozenset(c))

    def char_class(self) -> CharSet:
        negated = self.peek() == "^"
        if negated:
            self.take()
        chars: set[str] = set()
        first = True
        while True:
            c = self.take()
            if c is None:
                raise self.error("unclosed '['")
            if c == "]" and not first:
                return CharSet(frozenset(chars), negated)
            first = False
            if c == "\\":
                e = self.escape()
                if e.negated:
                    raise self.error("negated escapes inside [...] are not supported")
                chars |= e.chars
                continue
            if self.peek() == "-" and self.i + 1 < len(self.p) and self.p[self.i + 1] != "]":
                self.take()
                hi = self.take()
                if ord(hi) < ord(c):
                    raise self.error(f"bad range {c}-{hi}")
                chars |= {chr(o) for o in range(ord(c), ord(hi) + 1)}
            else:
                chars.add(c)


def parse(pattern: str):
    """The syntax tree of ``pattern`` (see the module docstring for the dialect)."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern: expected a str, got {type(pattern).__name__}")
    parser = _Parser(pattern)
    tree = parser.alternation()
    if parser.i != len(pattern):
        raise parser.error("unbalanced ')'")
    return tree


# --- 2. Thompson's NFA, determinised on the fly --------------------------------------------------


class Regex:
    """A compiled pattern: ``fullmatch(text)``, and a DFA walk ``start -> step(state, text)``.

    DFA states are frozensets of NFA states (closed under empty moves); the empty set is dead.
    """

    def __init__(self, pattern: str):
        self.pattern = pattern
        self.edges: list[list[tuple[CharSet, int]]] = []  # state -> [(charset, next)]
        self.empty: list[list[int]] = []  # state -> [next] by empty moves
        start, self.accept = self._build(parse(pattern))
        self.start = self._closure({start})
        self._live = self._live_states()
        self._steps: dict[tuple[frozenset, str], frozenset] = {}

    def _new(self) -> int:
        self.edges.append([])
        self.empty.append([])
        return len(self.edges) - 1

    def _build(self, node) -> tuple[int, int]:
        """Fragment (entry, exit) for ``node``."""
        kind = node[0]
        if kind == "set":
            a, b = self._new(), self._new()
            self.edges[a].append((node[1], b))
            return a, b
        if kind == "cat":
            a = b = self._new()
            for item in node[1]:
                s, e = self._build(item)
                self.empty[b].append(s)
                b = e
            return a, b
        if kind == "alt":
            a, b = self._new(), self._new()
            for branch in node[1]:
                s, e = self._build(branch)
                self.empty[a].append(s)
                self.empty[e].append(b)
            return a, b
        _, child, lo, hi = node  # "rep": lo copies, then (hi - lo) optional ones, or a loop
        a = b = self._new()
        for _ in range(lo):
            s, e = self._build(child)
            self.empty[b].append(s)
            b = e
        if hi is None:
            s, e = self._build(child)
            self.empty[b].append(s)
            self.empty[e].append(b)  # loop back: zero or more further copies
            return a, b
        end = self._new()
        for _ in range(hi - lo):
            s, e = self._build(child)
            self.empty[b].append(s)
            self.empty[b].append(end)  # skip the rest
            b = e
        self.empty[b].append(end)
        return a, end

    def _closure(self, states) -> frozenset:
        stack, seen = list(states), set(states)
        while stack:
            for t in self.empty[stack.pop()]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)

    def _live_states(self) -> set[int]:
        """NFA states from which the accepting state can be reached (any characters)."""
        back: dict[int, list[int]] = {}
        for s in range(len(self.edges)):
            for t in self.empty[s] + [t for _, t in self.edges[s]]:
                back.setdefault(t, []).append(s)
        live, stack = {self.accept}, [self.accept]
        while stack:
            for s in back.get(stack.pop(), []):
                if s not in live:
                    live.add(s)
                    stack.append(s)
        return live

    def step(self, state: frozenset, text: str) -> frozenset:
        """The DFA state after reading ``text`` from ``state`` (empty: dead)."""
        for c in text:
            key = (state, c)
            if key not in self._steps:
                moved = {t for s in state for cs, t in self.edges[s] if c in cs}
                self._steps[key] = self._closure(moved) & frozenset(self._live)
            state = self._steps[key]
            if not state:
                break
        return state

    def accepts(self, state: frozenset) -> bool:
        return self.accept in state

    def fullmatch(self, text: str) -> bool:
        """Whether the whole of ``text`` matches (like ``re.fullmatch(pattern, text) is not None``)."""
        return self.accepts(self.step(self.start, text))


# --- 3. the logits processor ---------------------------------------------------------------------


class RegexConstraint:
    """Mask every token that cannot continue a match of ``pattern``.

    ``token_strings[i]`` is the text of token ``i`` (for a character vocabulary, ``vocab.chars``);
    the text generated after ``prompt_length`` tokens is what must match. Use as a processor
    (``constraint(ids, scores)``) and as a stopping criterion (``constraint.done(ids)``: the match is
    complete and no token can extend it, or the row is dead). A pattern should end in a literal
    (``"}"``, ``"\\n"``) so that the model can finish it: without an end-of-sequence token, an open-ended
    tail like ``[a-z]+`` never ends by itself.
    """

    def __init__(self, pattern: str, token_strings: list[str], prompt_length: int):
        if prompt_length < 0:
            raise ValueError(f"prompt_length: expected an int >= 0, got {prompt_length!r}")
        if not token_strings or not all(isinstance(t, str) for t in token_strings):
            raise ValueError("token_strings: expected a non-empty list of str, one per token id")
        self.regex = Regex(pattern)
        self.token_strings, self.prompt_length = list(token_strings), prompt_length
        self._masks: dict[frozenset, torch.Tensor] = {}

    def state(self, row: torch.Tensor) -> frozenset:
        """The DFA state after the generated part of one row ``(seq,)``."""
        text = "".join(self.token_strings[i] for i in row[self.prompt_length:].tolist())
        return self.regex.step(self.regex.start, text)

    def allowed(self, state: frozenset) -> torch.Tensor:
        """``(vocab,)`` bool: tokens whose text keeps a match possible from ``state``."""
        if state not in self._masks:
            self._masks[state] = torch.tensor(
                [bool(t) and bool(self.regex.step(state, t)) for t in self.token_strings])
        return self._masks[state]

    def __call__(self, ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if scores.shape[-1] != len(self.token_strings):
            raise ValueError(f"scores: expected vocab size {len(self.token_strings)} (one per token "
                             f"string), got {scores.shape[-1]}")
        masks = torch.stack([self.allowed(self.state(row)) for row in ids])
        masks[~masks.any(-1)] = True  # finished rows: leave them alone (the loop pads them)
        return scores.masked_fill(~masks, float("-inf"))

    def done(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.tensor([not bool(self.allowed(self.state(row)).any()) for row in ids])


__all__ = ["CharSet", "Regex", "RegexConstraint", "parse"]
