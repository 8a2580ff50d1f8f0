"""Chain of thought on a toy task: one tiny GPT size trained to answer directly or with a scratchpad.

The task is "the parity of n bits" (:mod:`roadmap_lib.reasoning` with ``modulus=2``) in its
tagged format, 2 to 6 bits: ``a1b1c0d1=`` -> ``#1.`` (direct) or ``a1:1,b1:0,c0:0,d1:1#1.``
(scratchpad: each bit copied, then the parity so far). Models of one size and one recipe are trained on fresh problems every step, one per
format and seed, and scored by greedy decoding on a fixed test set, per number of digits. The
scratchpad models are then used three more ways:

- self-consistency (Wang et al., 2023): the majority answer of k sampled chains;
- best-of-n: the first of n sampled chains that :func:`roadmap_lib.reasoning.chain_is_consistent`
  accepts (a verifier of the arithmetic only), with :func:`roadmap_lib.agents.best_of_n`;
- a calculator tool loop (:func:`roadmap_lib.agents.tool_loop`): the model writes each step's name
  and digit and ``:``, the loop writes the running sum.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from roadmap_lib import agents, reasoning
from roadmap_lib.chapters.ch11_prompting_distillation import ship
from roadmap_lib.data import CharVocab
from roadmap_lib.generation import decode_loop, greedy, sample
from roadmap_lib.measure import cpu_threads
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.training import TrainConfig, train

RESULTS = "11_cot.json"
CHECKPOINT = "zoo/gpt-char-cot.safetensors"
MODULUS = 2  # the parity of a string of bits
N_DIGITS = tuple(range(2, 7))
CONTEXT = 48  # the longest scratchpad example, 6 bits, needs 45 positions
MODEL = {"d_model": 64, "n_layers": 2, "n_heads": 4}
TRAIN = {"max_steps": 600, "lr": 3e-3, "warmup_steps": 50, "weight_decay": 0.1, "eval_interval": 600,
             "eval_batches": 2}
BATCH = 32
TEST_PER_LENGTH, TEST_SEED = 100, 12345
SC_KS, SC_TEMPERATURE, SC_PER_LENGTH = (1, 3, 5, 9), 1.0, 40
TOOL_PER_LENGTH = 20


def vocab() -> CharVocab:
    return CharVocab(reasoning.TAGGED_ALPHABET)


def new_model(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=len(reasoning.TAGGED_ALPHABET), context_length=CONTEXT,
                         attention_backend="sdpa", **MODEL))


def pairs(rng: random.Random, n: int, cot: bool, n_digits: Sequence[int] = N_DIGITS) -> list[tuple[str, str]]:
    """``n`` ``(prompt, completion)`` pairs in the tagged format, lengths uniform over ``n_digits``."""
    out = []
    for _ in range(n):
        digits = reasoning.make_problem(rng, rng.choice(list(n_digits)), MODULUS)
        out.append((reasoning.tagged_prompt(digits), reasoning.tagged_completion(digits, cot, MODULUS)))
    return out


def batches(cot: bool, batch_size: int = BATCH):
    """The ``get_batch`` of :func:`roadmap_lib.training.train`: fresh problems each call, drawn
    from a ``random.Random`` seeded by the trainer's generator (so a seed fixes the data)."""
    stoi = vocab().stoi

    def get_batch(split: str, g: torch.Generator):
        rng = random.Random(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        return reasoning.encode_examples(pairs(rng, batch_size, cot), stoi, CONTEXT)

    return get_batch


def train_model(cot: bool, seed: int, *, steps: int | None = None, progress: bool = False) -> tuple[GPT, float]:
    """``(model, seconds)``: one model trained on direct (``cot=False``) or scratchpad answers."""
    model = new_model(seed)
    cfg = dict(TRAIN, progress=progress, seed=seed)
    if steps is not None:
        cfg.update(max_steps=steps, eval_interval=steps, warmup_steps=min(50, steps // 4))
    with cpu_threads(1):
        result = train(model, batches(cot), TrainConfig(**cfg))
    return model.eval(), result.seconds


def test_set(per_length: int = TEST_PER_LENGTH, seed: int = TEST_SEED,
             n_digits: Sequence[int] = N_DIGITS) -> dict[int, list[list[int]]]:
    """``{n_digits: problems}``, fixed by ``seed``. Not disjoint from training: there are only 2^n
    problems of n bits, and the training stream sees every one of them many times."""
    rng = random.Random(seed)
    return {n: [reasoning.make_problem(rng, n, MODULUS) for _ in range(per_length)] for n in n_digits}


@torch.no_grad()
def complete(model: GPT, problems: list[list[int]], *, samples: int = 1, temperature: float | None = None,
             generator: torch.Generator | None = None) -> list[list[str]]:
    """Completions of equal-length ``problems``: ``[problem][sample] -> text`` after the prompt.
    ``temperature=None`` is greedy (then ``samples`` must be 1)."""
    if len({len(p) for p in problems}) != 1:
        raise ValueError("problems: expected problems of one length (prompts are batched)")
    if temperature is None and samples != 1:
        raise ValueError(f"samples: greedy decoding gives one completion, got samples={samples}")
    v = vocab()
    ids = torch.stack([v.encode(reasoning.tagged_prompt(p)) for p in problems])
    ids = ids.repeat_interleave(samples, dim=0)
    room = CONTEXT - ids.shape[1]
    eos = v.stoi[reasoning.END]
    with cpu_threads(1):
        if temperature is None:
            out = greedy(model, ids, room, eos_token_id=eos, use_cache=True)
        else:
            out = sample(model, ids, room, temperature=temperature, generator=generator,
                         eos_token_id=eos, use_cache=True)
    texts = [_cut(v.decode(row[ids.shape[1]:].tolist())) for row in out]
    return [texts[i * samples:(i + 1) * samples] for i in range(len(problems))]


def _cut(text: str) -> str:
    """A completion up to and including its first ``.`` (the rest is padding)."""
    head, sep, _ = text.partition(reasoning.END)
    return head + sep


def accuracy_by_length(model: GPT, tests: dict[int, list[list[int]]]) -> dict[int, float]:
    """Greedy exact-answer accuracy for each problem length."""
    out = {}
    for n, problems in tests.items():
        texts = complete(model, problems)
        out[n] = sum(reasoning.parse_answer(t[0]) == reasoning.answer(p, MODULUS)
                     for t, p in zip(texts, problems)) / len(problems)
    return out


def sampled_chains(model: GPT, tests: dict[int, list[list[int]]], n: int = max(SC_KS),
                   temperature: float = SC_TEMPERATURE, seed: int = 0) -> dict[int, list[list[str]]]:
    """``{n_digits: [problem][sample] -> completion}``, ``n`` sampled chains per problem."""
    g = torch.Generator().manual_seed(seed)
    return {k: complete(model, ps, samples=n, temperature=temperature, generator=g) for k, ps in tests.items()}


def vote_and_verify(chains: dict[int, list[list[str]]], tests: dict[int, list[list[int]]],
                    ks: Sequence[int] = SC_KS) -> dict[str, dict[int, dict[int, float]]]:
    """Accuracy of the majority vote and of best-of-k under :func:`reasoning.chain_is_consistent`,
    over the first k sampled chains, ``{"vote"|"verifier": {n_digits: {k: accuracy}}}``."""
    out = {"vote": {}, "verifier": {}}
    for n, problems in tests.items():
        truth = [reasoning.answer(p, MODULUS) for p in problems]
        rows = chains[n]
        out["vote"][n] = {k: sum(reasoning.majority_vote([reasoning.parse_answer(t) for t in r[:k]]) == y
                                 for r, y in zip(rows, truth)) / len(problems) for k in ks}
        out["verifier"][n] = {
            k: sum(reasoning.parse_answer(agents.best_of_n(r[:k], _verifier)) == y
                   for r, y in zip(rows, truth)) / len(problems) for k in ks}
    return out


def _verifier(text: str) -> bool:
    return reasoning.chain_is_consistent(text, MODULUS)


def calculator(text: str) -> str:
    """The tool: the running sum after the step the text ends on (``...,c1:`` -> previous sum + 1,
    mod 2). It reads the step's digit and the previous sum from the text, nothing else; a step it
    cannot read gets ``?``, which no answer parses."""
    body = text.partition("=")[2]
    steps = body.split(",")
    last = steps[-1]
    if len(last) != 3 or not last[1].isdigit() or last[2] != ":":
        return "?"
    prev = 0 if len(steps) == 1 else steps[-2][-1]
    prev = int(prev) if str(prev).isdigit() else 0
    return str((prev + int(last[1])) % MODULUS)


def model_generator(model: GPT, stops: str = ":" + reasoning.END):
    """``generate(text) -> str`` for :func:`agents.tool_loop`: greedy continuation of ``text``
    that ends at the first character of ``stops`` it writes, or when the context is full."""
    v = vocab()
    stop_ids = torch.tensor([v.stoi[c] for c in stops])

    @torch.no_grad()
    def generate(text: str) -> str:
        ids = v.encode(text)[None]
        room = CONTEXT - ids.shape[1]
        if room <= 0:
            return ""
        with cpu_threads(1):
            out = decode_loop(model, ids, room, lambda _, logits: logits.argmax(-1), use_cache=True,
                              pad_token_id=v.stoi[reasoning.END],
                              stop=lambda x: torch.isin(x[:, -1], stop_ids))
        new = v.decode(out[0, ids.shape[1]:].tolist())
        for i, ch in enumerate(new):
            if ch in stops:
                return new[:i + 1]
        return new

    return generate


def tool_accuracy(model: GPT, tests: dict[int, list[list[int]]]) -> tuple[dict[int, float], list]:
    """Accuracy of the model inside the calculator tool loop, per length, and every trace."""
    generate = model_generator(model)
    acc, traces = {}, []
    for n, problems in tests.items():
        right = 0
        for p in problems:
            tr = agents.tool_loop(generate, reasoning.tagged_prompt(p), calculator, call_marker=":",
                                  stop=reasoning.END, max_calls=len(reasoning.TAGS))
            right += reasoning.parse_answer(tr.completion) == reasoning.answer(p, MODULUS)
            traces.append(tr)
        acc[n] = right / len(problems)
    return acc, traces


def run(seeds: Sequence[int] = (0, 1, 2), progress: bool = False) -> tuple[dict, GPT]:
    """The whole experiment: ``(record, the first seed's scratchpad model)``. Each seed's runs
    depend on that seed only, so runs of single seeds, concatenated in order, are the same record
    (:func:`merge`)."""
    tests = test_set()
    small = {n: ps[:SC_PER_LENGTH] for n, ps in tests.items()}
    runs, keep = [], None
    for seed in seeds:
        for cot in (False, True):
            start = time.perf_counter()
            model, seconds = train_model(cot, seed, progress=progress)
            row = {"seed": seed, "cot": cot, "train_seconds": round(seconds, 1),
                       "accuracy": {str(n): a for n, a in accuracy_by_length(model, tests).items()}}
            if cot:
                vv = vote_and_verify(sampled_chains(model, small, seed=seed), small)
                for key, d in vv.items():
                    row[key] = {str(n): {str(k): a for k, a in dk.items()} for n, dk in d.items()}
                tool_set = {n: ps[:TOOL_PER_LENGTH] for n, ps in tests.items()}
                row["tool"] = {str(n): a for n, a in tool_accuracy(model, tool_set)[0].items()}
                row["greedy_tool_set"] = {str(n): a for n, a in accuracy_by_length(model, tool_set).items()}
                row["greedy_sc_set"] = {str(n): a for n, a in accuracy_by_length(model, small).items()}
                if keep is None:
                    keep = model
            row["seconds"] = round(time.perf_counter() - start, 1)
            if progress:
                print(json.dumps(row), flush=True)
            runs.append(row)
    record = {"task": "parity of n bits, tagged format", "modulus": MODULUS, "n_digits": list(N_DIGITS),
                  "model": MODEL, "context": CONTEXT, "train": TRAIN, "batch": BATCH, "test_per_length": TEST_PER_LENGTH,
                  "test_seed": TEST_SEED, "sc_ks": list(SC_KS), "sc_temperature": SC_TEMPERATURE,
                  "sc_per_length": SC_PER_LENGTH, "tool_per_length": TOOL_PER_LENGTH, "kept_model_seed": seeds[0],
                  "runs": runs}
    return record, keep


def merge(records: Sequence[dict]) -> dict:
    """One record from records of single seeds (in order), as :func:`run` over all of them gives."""
    out = dict(records[0], runs=[r for rec in records for r in rec["runs"]])
    out["kept_model_seed"] = records[0]["runs"][0]["seed"]
    return out


def save(record: dict, model: GPT, root: Path) -> None:
    """Write the results file and the kept scratchpad model under ``root`` (laid out like data/)."""
    ship.save(root, RESULTS, record, model, CHECKPOINT, dict(MODEL, context_length=CONTEXT))


def load_model(root: Path) -> GPT:
    """The seed-0 scratchpad model shipped with the results."""
    return ship.load(new_model(0), root, CHECKPOINT)


__all__ = [
    "BATCH",
    "CHECKPOINT",
    "CONTEXT",
    "N_DIGITS",
    "RESULTS",
    "accuracy_by_length",
    "batches",
    "calculator",
    "complete",
    "load_model",
    "merge",
    "model_generator",
    "new_model",
    "pairs",
    "run",
    "sampled_chains",
    "save",
    "test_set",
    "tool_accuracy",
    "train_model",
    "vocab",
    "vote_and_verify",
]
