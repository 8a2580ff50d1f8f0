"""Few-shot prompting on a toy task whose only definition is the examples in the prompt.

An *episode* picks one mapping of 4-letter words over the letters ``a``-``f`` (distinct letters)
from one of four families and writes examples of it, ``x>y;`` each::

    bdae>eadb;cfab>bafc;face>     (reverse: the query after the last ">" is "ecaf")

- three fixed functions, the same in every episode: ``reverse`` (the word backwards), ``sort`` (its
  letters in alphabetical order) and ``shift`` (every letter one place along the alphabet, ``f`` to
  ``a``);
- ``substitute``: every letter replaced through a random permutation of the alphabet, drawn per
  episode, so that only the examples say where a letter goes.

The first three can only be *recognised* from the demonstrations (which of the known functions is
it?); the fourth must be *learned* from them (where does each letter go?): the distinction Pan et
al. (2023) draw between task recognition and task learning in context.

A model is trained on such episodes with the loss on every output (so it trains with 0, 1, ... shots
at once) and is then prompted with k *demonstrations* and a query. With 0 shots it can only guess
the family. Replacing the demonstrations' outputs with random words of the right format (Min et
al., 2022) separates what they teach: the format (4 distinct letters, then ``;``) or the mapping.

Scoring is exact match of the greedy answer. Because every answer has 4 letters, the greedy answer
is right exactly when the model's argmax is the right letter at each of the 4 answer positions
with the right answer fed in (teacher forcing): one forward pass scores a whole batch.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Sequence
from pathlib import Path

import torch

from roadmap_lib.chapters.ch11_prompting_distillation import ship
from roadmap_lib.data import CharVocab
from roadmap_lib.measure import cpu_threads
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.training import TrainConfig, evaluate, train

LETTERS = "abcdef"
WORD = 4
FAMILIES = ("reverse", "sort", "shift", "substitute")
ALPHABET = LETTERS + ">;."
EXAMPLE = WORD * 2 + 2  # "abcd>dcba;"
MAX_SHOTS = 4
CONTEXT = EXAMPLE * (MAX_SHOTS + 1)
RESULTS = "11_fewshot.json"
CHECKPOINT = "zoo/gpt-char-fewshot.safetensors"
MODEL = {"d_model": 64, "n_layers": 2, "n_heads": 4}
TRAIN = {"max_steps": 550, "lr": 4e-3, "warmup_steps": 50, "weight_decay": 0.1, "eval_interval": 550,
         "eval_batches": 2}
BATCH = 32
TEST_EPISODES, TEST_SEED = 320, 2024


# ---- the task -------------------------------------------------------------------------------------


def make_mapping(family: str, rng: random.Random) -> dict:
    """One mapping of ``family``: ``{"family"}``, plus ``"perm"`` (drawn with ``rng``) for ``substitute``."""
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    if family == "substitute":
        perm = list(LETTERS)
        rng.shuffle(perm)
        return {"family": family, "perm": "".join(perm)}
    return {"family": family}


def apply(mapping: dict, word: str) -> str:
    """The mapping's output for ``word``."""
    f = mapping["family"]
    if f == "reverse":
        return word[::-1]
    if f == "sort":
        return "".join(sorted(word))
    if f == "shift":
        return "".join(LETTERS[(LETTERS.index(c) + 1) % len(LETTERS)] for c in word)
    if f == "substitute":
        return "".join(mapping["perm"][LETTERS.index(c)] for c in word)
    raise ValueError(f"mapping: unknown family {f!r}")


def random_word(rng: random.Random) -> str:
    """``WORD`` distinct letters in random order."""
    return "".join(rng.sample(LETTERS, WORD))


def episode(rng: random.Random, n: int, family: str | None = None) -> tuple[dict, list[tuple[str, str]]]:
    """``(mapping, [(x, y)] * n)``: one mapping (family uniform unless given) and ``n`` examples."""
    mapping = make_mapping(family or rng.choice(FAMILIES), rng)
    words = [random_word(rng) for _ in range(n)]
    return mapping, [(w, apply(mapping, w)) for w in words]


def format_prompt(demos: Sequence[tuple[str, str]], query: str) -> str:
    """``"x1>y1;x2>y2;query>"``: the demonstrations, then the query waiting for its answer."""
    return "".join(f"{x}>{y};" for x, y in demos) + f"{query}>"


def random_labels(demos: Sequence[tuple[str, str]], rng: random.Random) -> list[tuple[str, str]]:
    """The same inputs with each output replaced by a random word: the format kept, the mapping lost."""
    return [(x, random_word(rng)) for x, _ in demos]


def vocab() -> CharVocab:
    return CharVocab(ALPHABET)


def encode_episodes(episodes: Sequence[list[tuple[str, str]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)`` of shape (len(episodes), CONTEXT): each row is the episode's text
    ``x>y;x>y;...`` shifted by one, with targets only on the output letters and the ``;`` after
    them (-100 elsewhere: the inputs are random, there is nothing to learn there)."""
    stoi = vocab().stoi
    inputs = torch.full((len(episodes), CONTEXT), stoi["."], dtype=torch.long)
    targets = torch.full((len(episodes), CONTEXT), -100, dtype=torch.long)
    for i, ex in enumerate(episodes):
        text = "".join(f"{x}>{y};" for x, y in ex)
        if len(text) - 1 > CONTEXT:
            raise ValueError(f"episodes: an episode of {len(ex)} examples needs {len(text) - 1} positions, "
                             f"got CONTEXT={CONTEXT}")
        ids = [stoi[c] for c in text]
        inputs[i, :len(ids) - 1] = torch.tensor(ids[:-1])
        for j in range(len(ex)):
            start = j * EXAMPLE + WORD + 1  # the first output letter
            for p in range(start, start + WORD + 1):
                targets[i, p - 1] = ids[p]
    return inputs, targets


def batches(batch_size: int = BATCH, shots: int = MAX_SHOTS + 1):
    """The ``get_batch`` of :func:`roadmap_lib.training.train`: fresh episodes of ``shots`` examples,
    drawn from a ``random.Random`` seeded by the trainer's generator."""

    def get_batch(split: str, g: torch.Generator):
        rng = random.Random(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        return encode_episodes([episode(rng, shots)[1] for _ in range(batch_size)])

    return get_batch


# ---- the model -------------------------------------------------------------------------------------


def new_model(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=len(ALPHABET), context_length=CONTEXT, attention_backend="sdpa", **MODEL))


def train_model(seed: int, *, steps: int | None = None, progress: bool = False) -> tuple[GPT, float]:
    """``(model, seconds)`` trained on fresh episodes; ``steps`` overrides the recipe's length."""
    model = new_model(seed)
    cfg = dict(TRAIN, progress=progress, seed=seed)
    if steps is not None:
        cfg.update(max_steps=steps, eval_interval=steps, warmup_steps=min(TRAIN["warmup_steps"], steps // 4))
    with cpu_threads(1):
        result = train(model, batches(), TrainConfig(**cfg))
    return model.eval(), result.seconds


# ---- evaluation ------------------------------------------------------------------------------------


def test_set(n: int = TEST_EPISODES, seed: int = TEST_SEED) -> list[dict]:
    """``n`` fixed test episodes, each ``{"mapping", "demos" (MAX_SHOTS pairs), "query", "answer",
    "random_demos"}`` (the same demonstrations with random outputs), the families in turn."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        mapping, ex = episode(rng, MAX_SHOTS + 1, FAMILIES[i % len(FAMILIES)])
        demos, (query, ans) = ex[:-1], ex[-1]
        out.append({"mapping": mapping, "demos": demos, "query": query, "answer": ans,
                    "random_demos": random_labels(demos, rng)})
    return out


@torch.no_grad()
def answers_right(model: GPT, prompts: Sequence[str], answers: Sequence[str]) -> torch.Tensor:
    """``(len(prompts),)`` bool: is the greedy answer to each prompt exactly its answer? (See the
    module's docstring: one teacher-forced pass decides it.) Prompts may differ in length."""
    if len(prompts) != len(answers):
        raise ValueError(f"answers: expected one per prompt ({len(prompts)}), got {len(answers)}")
    stoi = vocab().stoi
    out = torch.zeros(len(prompts), dtype=torch.bool)
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    with cpu_threads(1):
        for length, idx in by_len.items():
            ids = torch.tensor([[stoi[c] for c in prompts[i] + answers[i][:-1]] for i in idx])
            if ids.shape[1] > CONTEXT:
                raise ValueError(f"prompts: a prompt of {length} characters leaves no room for the answer")
            pred = model(ids)[:, length - 1:].argmax(-1)
            truth = torch.tensor([[stoi[c] for c in answers[i]] for i in idx])
            out[idx] = (pred == truth).all(-1)
    return out


def accuracy(model: GPT, tests: Sequence[dict], shots: int, labels: str = "true") -> dict[str, float]:
    """Exact-match accuracy with the first ``shots`` demonstrations, per family and ``"all"``;
    ``labels="random"`` uses the random-output demonstrations."""
    if labels not in ("true", "random"):
        raise ValueError(f"labels: expected 'true' or 'random', got {labels!r}")
    if not 0 <= shots <= MAX_SHOTS:
        raise ValueError(f"shots: expected 0..{MAX_SHOTS}, got {shots!r}")
    key = "demos" if labels == "true" else "random_demos"
    right = answers_right(model, [format_prompt(t[key][:shots], t["query"]) for t in tests],
                          [t["answer"] for t in tests])
    out = {f: float(right[[i for i, t in enumerate(tests) if t["mapping"]["family"] == f]].float().mean())
           for f in FAMILIES}
    out["all"] = float(right.float().mean())
    return out


# ---- the ideal learner -------------------------------------------------------------------------------


def hypotheses() -> list[tuple[float, dict]]:
    """Every mapping with its prior probability: the family uniform, then its parameters uniform."""
    prior = 1 / len(FAMILIES)
    out = [(prior, {"family": f}) for f in FAMILIES if f != "substitute"]
    perms = list(itertools.permutations(LETTERS))
    out += [(prior / len(perms), {"family": "substitute", "perm": "".join(p)}) for p in perms]
    return out


def ideal_accuracy(tests: Sequence[dict], shots: int) -> float:
    """The accuracy of the Bayes-optimal learner that knows the four families and their priors: it
    answers the output with the largest posterior probability given the demonstrations, and is
    right with that probability (ties shared). The ceiling for any model at ``shots``."""
    hyps = hypotheses()
    total = 0.0
    for t in tests:
        demos = t["demos"][:shots]
        mass: dict[str, float] = {}
        for prior, h in hyps:
            if all(apply(h, x) == y for x, y in demos):
                y = apply(h, t["query"])
                mass[y] = mass.get(y, 0.0) + prior
        best = max(mass.values())
        winners = [y for y, m in mass.items() if m == best]
        total += (t["answer"] in winners) / len(winners)
    return total / len(tests)


# ---- the experiment ----------------------------------------------------------------------------------

LABEL_MIX = (0.0, 0.25, 0.5, 0.75, 1.0)
MIX_SHOTS = 4


def mixed_labels(tests: Sequence[dict], fraction_true: float, seed: int = 0) -> list[dict]:
    """The tests with, in each, ``round(fraction_true * MIX_SHOTS)`` of the first ``MIX_SHOTS``
    demonstrations correct (which ones: drawn with ``seed``) and the others random."""
    rng = random.Random(seed)
    n_true = round(fraction_true * MIX_SHOTS)
    out = []
    for t in tests:
        keep = set(rng.sample(range(MIX_SHOTS), n_true))
        demos = [t["demos"][i] if i in keep else t["random_demos"][i] for i in range(MIX_SHOTS)]
        out.append(dict(t, demos=demos))
    return out


def measure(model: GPT, tests: Sequence[dict]) -> dict:
    """Every number the chapter plots for one model: accuracy by shots with true and random labels,
    per family, and with a mix of true and random demonstrations."""
    return {"true": {str(k): accuracy(model, tests, k) for k in range(MAX_SHOTS + 1)},
            "random": {str(k): accuracy(model, tests, k, "random") for k in range(1, MAX_SHOTS + 1)},
            "mix": {str(f): accuracy(model, mixed_labels(tests, f), MIX_SHOTS)["all"] for f in LABEL_MIX}}


SHORT_STEPS = 30


def short_rerun(seed: int = 0, steps: int = SHORT_STEPS) -> dict:
    """The first ``steps`` steps of seed ``seed``'s training, re-run: the training loss of each step
    and the loss on fixed held-out episodes at the end (what a reader re-measures live)."""
    model = new_model(seed)
    cfg = dict(TRAIN, progress=False, seed=seed, max_steps=steps, eval_interval=steps,
               warmup_steps=min(TRAIN["warmup_steps"], steps // 4))
    with cpu_threads(1):
        result = train(model, batches(), TrainConfig(**cfg))
        held_out = evaluate(model, batches(), batches=2, seed=TEST_SEED)
    return {"steps": steps, "seed": seed, "losses": [r["loss"] for r in result.log], "held_out_loss": held_out}


def run(seeds: Sequence[int] = (0, 1, 2), progress: bool = False) -> tuple[dict, GPT]:
    """The experiment: one model per seed, measured on the fixed test set; ``(record, seed 0's model)``."""
    tests = test_set()
    runs, keep = [], None
    for seed in seeds:
        model, seconds = train_model(seed, progress=progress)
        row = {"seed": seed, "train_seconds": round(seconds, 1), **measure(model, tests)}
        if progress:
            print(json.dumps({"seed": seed, "seconds": row["train_seconds"],
                              "true": {k: v["all"] for k, v in row["true"].items()}}), flush=True)
        runs.append(row)
        keep = keep or model
    record = {"short_rerun": short_rerun(seeds[0]),
              "task": "few-shot episodes: 4-letter words over a-f; reverse, sort, shift, substitute",
              "families": list(FAMILIES), "model": MODEL, "context": CONTEXT, "train": TRAIN, "batch": BATCH,
              "test_episodes": TEST_EPISODES, "test_seed": TEST_SEED, "max_shots": MAX_SHOTS,
              "mix_shots": MIX_SHOTS, "label_mix": list(LABEL_MIX), "kept_model_seed": seeds[0],
              "ideal": {str(k): ideal_accuracy(tests, k) for k in range(MAX_SHOTS + 1)}, "runs": runs}
    return record, keep


def merge(records: Sequence[dict]) -> dict:
    """One record from records of single seeds (in order), as :func:`run` over all of them gives:
    each seed's runs depend on that seed only; the rest is the first record's."""
    return dict(records[0], runs=[r for rec in records for r in rec["runs"]])


def save(record: dict, model: GPT, root: Path) -> None:
    """Write the results file and the kept model under ``root`` (laid out like data/)."""
    ship.save(root, RESULTS, record, model, CHECKPOINT, dict(MODEL, context_length=CONTEXT))


def load_model(root: Path) -> GPT:
    """The seed-0 model shipped with the results."""
    return ship.load(new_model(0), root, CHECKPOINT)


__all__ = ["ALPHABET", "CHECKPOINT", "CONTEXT", "FAMILIES", "LABEL_MIX", "LETTERS", "MAX_SHOTS", "RESULTS",
           "accuracy", "answers_right", "apply", "batches", "encode_episodes", "episode", "format_prompt",
           "hypotheses", "ideal_accuracy", "load_model", "make_mapping", "measure", "merge", "mixed_labels", "new_model",
           "random_labels", "random_word", "run", "save", "short_rerun", "test_set", "train_model", "vocab"]
