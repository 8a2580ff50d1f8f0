"""Agents and test-time compute on the parity task, with chapter 11's scratchpad model.

The model is the zoo's ``gpt-char-cot`` (chapter 11: a 2-layer, 64-dimension GPT trained on the
parity of 2 to 6 named bits, ``a1b0c1=`` -> ``a1:1,b0:1,c1:0#0.``). It is loaded here through the
core only (its config is in the checkpoint's header, its alphabet is
:data:`roadmap_lib.reasoning.TAGGED_ALPHABET`).

Four ways to spend compute on one problem, each scored on **every** problem of 2 to 6 bits
(4 + 8 + 16 + 32 + 64 = 124; the whole problem space, so no sampling of problems):

- ``greedy``: one greedy chain;
- ``vote``: n chains sampled at :data:`TEMPERATURE`, majority answer (self-consistency);
- ``verifier``: the same n chains, the first that :func:`roadmap_lib.reasoning.chain_is_consistent`
  accepts (it checks the arithmetic a chain shows, not the copying), else the first chain;
- ``agent``: n runs of :func:`roadmap_lib.agents.run_agent` sampled at the same temperature, each
  model call writing one action: a bit's name (the ``lookup`` tool reads that bit from the problem),
  ``:`` (the ``calc`` tool writes the running parity) or ``#x.`` (the final answer); majority answer
  over the runs that answered. ``greedy agent``: one greedy run.

**Compute** is counted in token positions the model processes per problem: for a chain, its prompt
and the tokens it generates (one prefill, then a KV cache); for an agent run, the same summed over
its model calls, each of which re-reads the whole text so far (no cache is kept across calls).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from roadmap_lib import agents, reasoning
from roadmap_lib.checkpoint import load_model as load_weights
from roadmap_lib.checkpoint import read_model_metadata
from roadmap_lib.data import CharVocab
from roadmap_lib.generation import decode_loop, filter_logits
from roadmap_lib.measure import cpu_threads
from roadmap_lib.models import GPT, GPTConfig

CHECKPOINT = "zoo/gpt-char-cot.safetensors"  # built by chapter 11 (python -m roadmap_lib build 11-cot)
MODULUS = 2
N_DIGITS = tuple(range(2, 7))
TEMPERATURE = 1.5
NS = tuple(range(1, 17))
SEEDS = (0, 1, 2)
MAX_STEPS = 16  # model calls per agent run; a 6-bit problem needs 2 * 6 + 1 = 13
TIMEOUT_S = 1.0
STOPS = reasoning.TAGS + ":" + reasoning.END  # one model call writes up to one of these


def vocab() -> CharVocab:
    return CharVocab(reasoning.TAGGED_ALPHABET)


def load_model(root: Path | None = None) -> GPT:
    """Chapter 11's scratchpad model from ``root`` (default: data/), through the core only."""
    from roadmap_lib import DATA_DIR

    path = (root or DATA_DIR) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python -m roadmap_lib build 11-cot`")
    config, _ = read_model_metadata(path)
    model = GPT(GPTConfig(vocab_size=len(reasoning.TAGGED_ALPHABET), attention_backend="sdpa", **config))
    load_weights(model, path)
    return model.eval()


def all_problems(n_digits: Sequence[int] = N_DIGITS) -> list[list[int]]:
    """Every bit string of each length in ``n_digits``, shortest first, in counting order."""
    return [list(bits) for n in n_digits for bits in itertools.product((0, 1), repeat=n)]


# ---- chains: one model call writes a whole scratchpad -------------------------------------------


@torch.no_grad()
def chains(model: GPT, problems: Sequence[Sequence[int]], n: int = 1, temperature: float | None = None,
           seed: int = 0) -> tuple[list[list[str]], list[list[int]]]:
    """``(texts, tokens)``, each ``[problem][sample]``: ``n`` completions per problem (greedy when
    ``temperature`` is None, then ``n`` must be 1) and the token positions each one cost (prompt +
    generated, up to and including its ``.``). Problems are batched by length, in order, one
    generator per call seeded by ``seed``, so a call with the same arguments gives the same texts."""
    if temperature is None and n != 1:
        raise ValueError(f"n: greedy decoding gives one chain per problem, got n={n}")
    v, g = vocab(), torch.Generator().manual_seed(seed)
    context = model.config.context_length
    texts, tokens = [None] * len(problems), [None] * len(problems)
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(problems):
        by_length.setdefault(len(p), []).append(i)
    for idx in by_length.values():
        ids = torch.stack([v.encode(reasoning.tagged_prompt(problems[i])) for i in idx]).repeat_interleave(n, 0)
        with cpu_threads(1):
            out = decode_loop(model, ids, context - ids.shape[1], _chooser(temperature, g),
                              eos_token_id=v.stoi[reasoning.END], use_cache=True)
        for j, i in enumerate(idx):
            rows = [v.decode(r[ids.shape[1]:].tolist()) for r in out[j * n:(j + 1) * n]]
            cut = [t[:t.index(reasoning.END) + 1] if reasoning.END in t else t for t in rows]
            texts[i], tokens[i] = cut, [ids.shape[1] + len(t) for t in cut]
    return texts, tokens


def _chooser(temperature: float | None, g: torch.Generator | None):
    if temperature is None:
        return lambda _, logits: logits.argmax(-1)
    return lambda _, logits: torch.multinomial(
        filter_logits(logits, temperature=temperature).softmax(-1), 1, generator=g)[:, 0]


def verified(texts: Sequence[str]) -> str:
    """Best-of-n with the arithmetic verifier: the first chain it accepts, else the first chain."""
    return agents.best_of_n(list(texts), lambda t: reasoning.chain_is_consistent(t, MODULUS))


# ---- the agent: one model call writes one action ------------------------------------------------


class Generator:
    """``generate(texts) -> outputs`` for :func:`roadmap_lib.agents.run_agents`: continue each
    text until the model writes one of :data:`STOPS` (or the context is full), greedy
    (``temperature=None``) or sampled from one generator seeded by ``seed``. Texts of one length
    go through the model as one batch (a KV cache within the call, none across calls), so the
    draws depend on the whole batch: the same prompts in the same order give the same runs."""

    def __init__(self, model: GPT, temperature: float | None = None, seed: int = 0):
        self.model, self.v = model, vocab()
        self.choose = _chooser(temperature, torch.Generator().manual_seed(seed) if temperature is not None else None)
        self.stop_ids = torch.tensor([self.v.stoi[c] for c in STOPS])

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> list[str]:
        outs = [""] * len(texts)
        groups: dict[int, list[int]] = {}
        for i, t in enumerate(texts):
            groups.setdefault(len(t), []).append(i)
        for length, idx in groups.items():
            room = self.model.config.context_length - length
            if room <= 0:
                continue  # the context is full: the model can write nothing
            ids = torch.stack([self.v.encode(texts[i]) for i in idx])
            with cpu_threads(1):
                out = decode_loop(self.model, ids, room, self.choose, use_cache=True,
                                  pad_token_id=self.v.stoi[reasoning.END],
                                  stop=lambda x: torch.isin(x[:, -1], self.stop_ids))
            for row, i in zip(out, idx):
                new = self.v.decode(row[length:].tolist())
                cut = next((k for k, ch in enumerate(new) if ch in STOPS), len(new) - 1)
                outs[i] = new[:cut + 1]
        return outs


def episode_tokens(ep: agents.Episode) -> int:
    """Token positions an agent run cost: for each model call, the text it re-read plus what it
    wrote."""
    total, length = 0, len(ep.prompt)
    for step in ep.steps:
        total += length + len(step.output)
        length += len(step.output) + len(step.observation or "")
    return total


_LOOKUP = re.compile(rf",?([{reasoning.TAGS}])")
_FINAL = re.compile(r"#(\d)\.")
_LOOKED_UP = re.compile(rf"[{reasoning.TAGS}](\d):$")  # a name, the bit the lookup wrote, then ':'


def parse(output: str, text: str) -> agents.Call | agents.Final | None:
    """The action one model call wrote: a bit's name (with the comma that separates steps) ->
    ``lookup``; ``:`` -> ``calc`` of the previous running parity (the last digit after a ``:`` in
    the text, 0 at the start) plus the bit just looked up (left empty when the ``:`` does not
    follow a name and its bit, which ``calc`` refuses); ``#x.`` -> the final answer; anything else
    -> None (malformed)."""
    if m := _LOOKUP.fullmatch(output):
        return agents.Call("lookup", m.group(1))
    if output == ":":
        sums = re.findall(r":(\d)", text[:-1])
        bit = _LOOKED_UP.search(text)
        return agents.Call("calc", f"{sums[-1] if sums else 0}+{bit.group(1) if bit else ''}")
    if m := _FINAL.fullmatch(output):
        return agents.Final(m.group(1))
    return None


def tools(bits: Sequence[int]) -> dict:
    """The allow-list of one problem: ``lookup(name)`` reads the named bit (a KeyError for a name
    the problem does not have), ``calc("p+b")`` the parity of two bits (a ValueError otherwise)."""
    table = {t: str(b) for t, b in zip(reasoning.TAGS, bits)}

    def lookup(name: str) -> str:
        if name not in table:
            raise KeyError(f"no bit named {name!r} in this problem")
        return table[name]

    def calc(expr: str) -> str:
        m = re.fullmatch(r"([01])\+([01])", expr)
        if not m:
            raise ValueError(f"calc expects two bits like '1+0', got {expr!r}")
        return str((int(m.group(1)) + int(m.group(2))) % MODULUS)

    return {"lookup": lookup, "calc": calc}


def run_episodes(model: GPT, problems: Sequence[Sequence[int]], temperature: float | None = None,
                 seed: int = 0) -> list[agents.Episode]:
    """One agent run per problem, all in one lockstep batch (:func:`roadmap_lib.agents.run_agents`)."""
    return agents.run_agents(Generator(model, temperature, seed), [reasoning.tagged_prompt(p) for p in problems],
                             [tools(p) for p in problems], parse, max_steps=MAX_STEPS, timeout_s=TIMEOUT_S)


def sample_seed(seed: int, sample: int) -> int:
    """The generator seed of sample ``sample`` (0-based) of sampling seed ``seed``: every sample
    index is one batch over all problems, so any one can be re-run alone."""
    return 1_000 * seed + sample


def failure_kind(ep: agents.Episode) -> str:
    """The status, with tool errors split by tool: a name the problem does not have, or a
    calculation without its operand (the model wrote ``:`` without looking a bit up)."""
    if ep.status == "tool error":
        return "lookup: no such bit" if ep.detail.startswith("KeyError") else "calc: missing operand"
    return ep.status


# ---- the study ----------------------------------------------------------------------------------


def _answer(text: str) -> int | None:
    return reasoning.parse_answer(text)


def _agent_fields(eps: list[agents.Episode]) -> dict:
    return {"answer": [_int(e.answer) for e in eps], "status": [failure_kind(e) for e in eps],
            "tokens": [episode_tokens(e) for e in eps], "calls": [e.model_calls for e in eps]}


def study(model: GPT, seeds: Sequence[int] = SEEDS, n: int = max(NS), temperature: float = TEMPERATURE,
          problems: Sequence[Sequence[int]] | None = None, progress: bool = False) -> dict:
    """Everything the section plots, per problem (and per seed and sample for the sampled methods):
    answers, verifier verdicts, statuses, token positions and model calls; lists are
    ``[problem]`` or ``[problem][sample]``."""
    problems = [list(p) for p in (problems or all_problems())]
    out = {"truth": [reasoning.answer(p, MODULUS) for p in problems]}
    texts, tokens = chains(model, problems)
    out["greedy"] = {"answer": [_answer(t[0]) for t in texts], "tokens": [t[0] for t in tokens]}
    out["greedy agent"] = _agent_fields(run_episodes(model, problems))
    out["runs"] = []
    for seed in seeds:
        start = time.perf_counter()
        texts, tokens = chains(model, problems, n, temperature, seed)
        row = {"seed": seed,
               "chains": {"answer": [[_answer(t) for t in ts] for ts in texts],
                          "consistent": [[reasoning.chain_is_consistent(t, MODULUS) for t in ts] for ts in texts],
                          "tokens": tokens}}
        per_sample = [_agent_fields(run_episodes(model, problems, temperature, sample_seed(seed, s)))
                      for s in range(n)]
        row["agent"] = {k: [[ps[k][i] for ps in per_sample] for i in range(len(problems))] for k in per_sample[0]}
        row["seconds"] = round(time.perf_counter() - start, 1)
        if progress:
            print(f"seed {seed}: {row['seconds']} s", flush=True)
        out["runs"].append(row)
    return out


def _int(answer: str | None) -> int | None:
    return None if answer is None else int(answer)


def _vote(answers: Sequence[int | None]) -> int | None:
    return reasoning.majority_vote(list(answers))


def curve(record: dict, method: str, seed_index: int, ns: Sequence[int] = NS) -> tuple[list[float], list[float]]:
    """``(mean token positions per problem, accuracy)`` for n = each of ``ns`` samples, for the
    sampled ``method`` (``"vote"``, ``"verifier"`` or ``"agent"``) of one seed's run. The first n
    samples of each problem are used, so the curves of one seed are nested."""
    run, truth = record["runs"][seed_index], record["truth"]
    xs, ys = [], []
    for n in ns:
        if method == "agent":
            src = run["agent"]
            picks = [_vote([a for a, s in zip(ans[:n], st[:n]) if s == "answered"])
                     for ans, st in zip(src["answer"], src["status"])]
        else:
            src = run["chains"]
            if method == "vote":
                picks = [_vote(ans[:n]) for ans in src["answer"]]
            else:
                picks = [next((a for a, ok in zip(ans[:n], cons[:n]) if ok), ans[0])
                         for ans, cons in zip(src["answer"], src["consistent"])]
        xs.append(sum(sum(t[:n]) for t in src["tokens"]) / len(truth))
        ys.append(sum(p == y for p, y in zip(picks, truth)) / len(truth))
    return xs, ys


def point(record: dict, method: str) -> tuple[float, float]:
    """``(mean token positions per problem, accuracy)`` of ``"greedy"`` or ``"greedy agent"``."""
    r, truth = record[method], record["truth"]
    return sum(r["tokens"]) / len(truth), sum(a == y for a, y in zip(r["answer"], truth)) / len(truth)


def status_table(record: dict) -> dict[str, list[int]]:
    """``{how an agent run ended: [count per seed]}`` over every sampled agent run."""
    kinds: dict[str, list[int]] = {}
    for k, run in enumerate(record["runs"]):
        for st in run["agent"]["status"]:
            for s in st:
                kinds.setdefault(s, [0] * len(record["runs"]))[k] += 1
    return kinds


__all__ = ["CHECKPOINT", "MAX_STEPS", "NS", "SEEDS", "TEMPERATURE", "Generator", "all_problems", "chains",
           "curve", "episode_tokens", "failure_kind", "load_model", "parse", "point", "run_episodes",
           "sample_seed", "status_table", "study", "tools", "verified", "vocab"]
