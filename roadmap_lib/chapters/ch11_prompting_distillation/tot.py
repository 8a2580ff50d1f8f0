"""Tree of thoughts on the parity task: a breadth-first search over partial scratchpads, with the
shipped scratchpad model (``gpt-char-cot``) as the proposer and the arithmetic verifier as the
pruning rule, against greedy decoding and against sampling whole chains, at matched compute.

- The *proposer* samples the next step of a partial chain (``b1:0,``: up to the next ``,``, or the
  answer ``#0.``) from the model at a temperature, ``branching`` times for each state of the frontier.
- The *value* of a partial chain is its log-probability under the model (temperature 1); a chain
  whose shown arithmetic is wrong is pruned (:func:`roadmap_lib.reasoning.chain_prefix_is_consistent`).
- :func:`roadmap_lib.reasoning.tree_search` keeps the ``beam_width`` best partial chains at each depth;
  its answer is the finished chain with the highest value.

**Compute** is counted in *generated tokens*: every token the model samples, for every proposal,
kept or pruned (one forward pass of one position each, with a KV cache). Re-reading the prompt and
the partial chain before each proposal is not counted: a prefix cache shares it (the way serving
systems do), and it is the same for every method that extends a chain.

The baselines spend their tokens on whole chains: greedy writes one; *sampling* writes ``n`` at the
same temperature and answers with the first that the verifier accepts (best-of-n, Cobbe et al.) or
with their majority (self-consistency).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from roadmap_lib import agents, reasoning
from roadmap_lib.chapters.ch11_prompting_distillation import cot
from roadmap_lib.generation import decode_loop
from roadmap_lib.measure import cpu_threads

RESULTS = "11_tot.json"
N_BITS = 6
PROBLEMS = 40
TEMPERATURE = 1.6
SAMPLE_NS = (1, 2, 4, 8, 16)
SEARCHES = ((1, 2), (2, 2), (2, 4), (4, 4))  # (beam_width, branching)
SEEDS = (0, 1, 2)
STEP_CHARS = 7  # "f1:0#0.": the last step runs on to the answer


def _steps(model, prefixes: Sequence[str], temperature: float, generator: torch.Generator,
           max_new: int) -> list[tuple[str, float, int]]:
    """For each text in ``prefixes`` (all of one length), sample until ``,`` or ``.`` or ``max_new``
    tokens: ``(new text, its log-probability at temperature 1, tokens generated)``."""
    v = cot.vocab()
    stops = torch.tensor([v.stoi[","], v.stoi[reasoning.END]])
    ids = torch.stack([v.encode(p) for p in prefixes])
    n = ids.shape[0]
    done = torch.zeros(n, dtype=torch.bool)
    logp = torch.zeros(n)
    count = torch.zeros(n, dtype=torch.long)

    def choose(_, logits):
        probs = (logits / temperature).softmax(-1)
        tok = torch.multinomial(probs, 1, generator=generator)[:, 0]
        live = ~done
        logp[live] += logits.log_softmax(-1)[live, tok[live]]
        count[live] += 1
        done[live] |= torch.isin(tok[live], stops)
        return tok

    with cpu_threads(1), torch.no_grad():
        out = decode_loop(model, ids, max_new, choose, pad_token_id=v.stoi[reasoning.END], use_cache=True,
                          stop=lambda x: torch.isin(x[:, -1], stops))
    texts = [v.decode(row[ids.shape[1]:ids.shape[1] + int(c)].tolist()) for row, c in zip(out, count)]
    return [(t, float(lp), int(c)) for t, lp, c in zip(texts, logp, count)]


def search(model, bits: Sequence[int], beam_width: int, branching: int, *, temperature: float = TEMPERATURE,
           generator: torch.Generator) -> dict:
    """One tree search for one problem: ``{"answer", "chain", "tokens", "expansions"}``."""
    prompt = reasoning.tagged_prompt(bits)
    logps = {"": 0.0}
    tokens = 0

    def propose(states):
        nonlocal tokens
        out = []
        for s in states:
            room = cot.CONTEXT - len(prompt) - len(s)
            if room <= 0:
                out.append([])
                continue
            kids = []
            for text, lp, c in _steps(model, [prompt + s] * branching, temperature, generator,
                                      min(STEP_CHARS, room)):
                tokens += c
                child = s + text
                logps.setdefault(child, logps[s] + lp)
                kids.append(child)
            out.append(kids)
        return out

    def value(chain):
        return logps[chain] if reasoning.chain_prefix_is_consistent(chain, cot.MODULUS) else None

    result = reasoning.tree_search("", propose, value, lambda c: c.endswith(reasoning.END),
                                   beam_width=beam_width, max_depth=len(bits) + 2)
    chain = result.best
    return {"answer": None if chain is None else reasoning.parse_answer(chain), "chain": chain,
            "tokens": tokens, "expansions": result.expansions}


def sample_chains(model, bits: Sequence[int], n: int, *, temperature: float = TEMPERATURE,
                  generator: torch.Generator) -> list[tuple[str, int]]:
    """``n`` whole chains sampled at ``temperature``: ``[(chain, tokens generated)]``."""
    prompt = reasoning.tagged_prompt(bits)
    v = cot.vocab()
    ids = v.encode(prompt)[None].repeat(n, 1)
    end = v.stoi[reasoning.END]
    with cpu_threads(1), torch.no_grad():
        out = decode_loop(model, ids, cot.CONTEXT - len(prompt),
                          lambda _, lg: torch.multinomial((lg / temperature).softmax(-1), 1, generator=generator)[:, 0],
                          eos_token_id=end, use_cache=True)
    chains = [cot._cut(v.decode(row[len(prompt):].tolist())) for row in out]
    return [(c, len(c)) for c in chains]


def greedy_chain(model, bits: Sequence[int]) -> tuple[str, int]:
    (text,), = cot.complete(model, [list(bits)])
    return text, len(text)


def greedy_accuracy(model, ps: Sequence[Sequence[int]] | None = None) -> float:
    """Greedy decoding's accuracy on ``ps`` (default: :func:`problems`)."""
    ps = problems() if ps is None else ps
    return cot.accuracy_by_length(model, {len(ps[0]): ps})[len(ps[0])]  # one batch of equal lengths


def _verified(chains: Sequence[str]) -> str:
    return agents.best_of_n(list(chains), lambda c: reasoning.chain_is_consistent(c, cot.MODULUS))


def run_seed(model, problems: Sequence[Sequence[int]], seed: int, temperature: float = TEMPERATURE) -> dict:
    """Every method on every problem with one sampling seed: accuracy and mean generated tokens."""
    g = torch.Generator().manual_seed(seed)
    truth = [reasoning.answer(p, cot.MODULUS) for p in problems]
    out: dict = {"seed": seed, "sample": {}, "search": {}}
    chains = [sample_chains(model, p, max(SAMPLE_NS), temperature=temperature, generator=g) for p in problems]
    for n in SAMPLE_NS:
        tok = sum(sum(c for _, c in row[:n]) for row in chains) / len(problems)
        ver = [reasoning.parse_answer(_verified([c for c, _ in row[:n]])) for row in chains]
        vote = [reasoning.majority_vote([reasoning.parse_answer(c) for c, _ in row[:n]]) for row in chains]
        out["sample"][str(n)] = {"tokens": tok,
                                 "verifier": sum(a == y for a, y in zip(ver, truth)) / len(problems),
                                 "vote": sum(a == y for a, y in zip(vote, truth)) / len(problems)}
    for w, b in SEARCHES:
        rows = [search(model, p, w, b, temperature=temperature, generator=g) for p in problems]
        out["search"][f"{w}x{b}"] = {"beam_width": w, "branching": b,
                                     "tokens": sum(r["tokens"] for r in rows) / len(problems),
                                     "accuracy": sum(r["answer"] == y for r, y in zip(rows, truth)) / len(problems)}
    return out


def problems(n: int = PROBLEMS, n_bits: int = N_BITS) -> list[list[int]]:
    """The first ``n`` test problems of ``n_bits`` bits of chapter 11's chain-of-thought test set."""
    return cot.test_set(n_digits=(n_bits,))[n_bits][:n]


def run(model, seeds: Sequence[int] = SEEDS) -> dict:
    """The experiment: greedy once, then sampling and search with each seed."""
    start = time.perf_counter()
    ps = problems()
    truth = [reasoning.answer(p, cot.MODULUS) for p in ps]
    greedy = [greedy_chain(model, p) for p in ps]
    record = {"task": f"parity of {N_BITS} bits, tagged scratchpad; proposer gpt-char-cot",
              "problems": PROBLEMS, "n_bits": N_BITS, "temperature": TEMPERATURE, "sample_ns": list(SAMPLE_NS),
              "searches": [list(s) for s in SEARCHES], "compute_unit": "generated tokens per problem",
              "greedy": {"tokens": sum(c for _, c in greedy) / len(ps),
                         "accuracy": sum(reasoning.parse_answer(t) == y for (t, _), y in zip(greedy, truth)) / len(ps)},
              "runs": [run_seed(model, ps, s) for s in seeds], "live": live_check(model)}
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


LIVE_PROBLEMS = 8


def live_check(model) -> dict:
    """A small, exactly repeatable piece of the experiment: seed 0's search with beam 1 and
    branching 2, and its sampling of 2 chains, on the first ``LIVE_PROBLEMS`` problems."""
    ps = problems(LIVE_PROBLEMS)
    truth = [reasoning.answer(p, cot.MODULUS) for p in ps]
    g = torch.Generator().manual_seed(0)
    rows = [search(model, p, 1, 2, generator=g) for p in ps]
    chains = [sample_chains(model, p, 2, generator=g) for p in ps]
    ver = [reasoning.parse_answer(_verified([c for c, _ in row])) for row in chains]
    return {"search_1x2": {"tokens": sum(r["tokens"] for r in rows) / len(ps),
                           "accuracy": sum(r["answer"] == y for r, y in zip(rows, truth)) / len(ps)},
            "sample_2": {"tokens": sum(sum(c for _, c in row) for row in chains) / len(ps),
                         "verifier": sum(a == y for a, y in zip(ver, truth)) / len(ps)}}


def save(record: dict, root: Path) -> None:
    (root / RESULTS).write_text(json.dumps(record, indent=1), encoding="utf-8")


__all__ = ["LIVE_PROBLEMS", "RESULTS", "SEARCHES", "greedy_accuracy", "greedy_chain", "live_check", "problems", "run",
           "run_seed", "sample_chains", "save", "search"]
