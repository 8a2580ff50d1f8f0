"""Instruction tuning on a small templated instruction set.

Six *task families* act on one lower-case word of the Jargon File; each has four *templates*
(phrasings of the same instruction). Every example is written in one frame, the "chat template"::

    Q: Write hacker backwards.
    A: rekcah

The prompt is ``"Q: " + instruction + "\\nA: "``, the response is the answer followed by ``"\\n"``
(which ends it). Fine-tuning sees only some families and some templates:

- ``SEEN`` families (reverse, uppercase, first letter, length) are trained; ``HELD_OUT_FAMILIES``
  (last letter, repeat) never are;
- templates 0-2 of a seen family are trained, template 3 (``HELD_OUT_TEMPLATE``) never is;
- the words are split too: training draws from ``train`` words, every evaluation uses ``test`` words.

Two tuned conditions train the same number of steps on the same batches of words: ``varied``
(templates 0, 1, 2 of each seen family) and ``one template`` (template 0 only). The zoo's character
GPT of chapter 07 (``gpt-char-jargon``) is the model; fine-tuning trains all its parameters, and the
loss is masked to the response: prompt positions have target -100, so the model is never trained to
write instructions, only to answer them.

The score is exact match of the greedy answer (the characters up to the first ``"\\n"``, at most
``MAX_ANSWER`` of them) on three evaluation sets: seen families with a seen template (template 0),
seen families with the held-out template, and held-out families with all four templates.
"""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

import torch

from roadmap_lib.data import load_text
from roadmap_lib.measure import cpu_threads
from roadmap_lib.objectives import lm_loss
from roadmap_lib.training import TrainConfig, train
from roadmap_lib.zoo import load_char_gpt

TEMPLATES = {
    "reverse": ("Reverse the word {w}.", "Write {w} backwards.", "Spell {w} from the end.",
                "What is {w} reversed?"),
    "uppercase": ("Uppercase the word {w}.", "Write {w} in capital letters.", "Shout the word {w}.",
                  "What is {w} in upper case?"),
    "first letter": ("First letter of {w}?", "Which letter does {w} start with?", "Give the initial of {w}.",
                     "What letter begins {w}?"),
    "length": ("How many letters are in {w}?", "Count the letters of {w}.", "Length of the word {w}?",
               "What is the length of {w}?"),
    "last letter": ("Last letter of {w}?", "Which letter does {w} end with?", "Give the final letter of {w}.",
                    "What letter ends {w}?"),
    "repeat": ("Repeat the word {w} twice.", "Say {w} two times.", "Write {w} twice.", "What is {w} said twice?"),
}
FAMILIES = tuple(TEMPLATES)
SEEN = ("reverse", "uppercase", "first letter", "length")
HELD_OUT_FAMILIES = ("last letter", "repeat")
HELD_OUT_TEMPLATE = 3
CONDITIONS = {"varied": (0, 1, 2), "one template": (0,)}
BASE = "not tuned"
EVAL_SETS = ("seen template", "held-out template", "held-out family")
END = "\n"
MAX_ANSWER = 14  # the longest answer ("repeat" of a 6-letter word) is 13 characters, plus the end
WORD_SEED = 10
N_TEST_WORDS = 40
RECIPE = {"steps": 600, "batch_size": 16, "lr": 3e-3, "warmup_steps": 30}
LIVE_STEPS = 20  # the chapter re-runs the first steps of (varied, seed 0) and compares their losses
SEEDS = (0, 1, 2)
RESULTS = "10_instruct.json"


def answer(family: str, word: str) -> str:
    """The correct response of ``family`` for ``word`` (without the end marker)."""
    if family not in TEMPLATES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    return {"reverse": lambda w: w[::-1], "uppercase": str.upper, "first letter": lambda w: w[0],
            "length": lambda w: str(len(w)), "last letter": lambda w: w[-1],
            "repeat": lambda w: f"{w} {w}"}[family](word)


def prompt(family: str, template: int, word: str) -> str:
    """The prompt of one example: ``"Q: <instruction>\\nA: "``."""
    if family not in TEMPLATES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    if not 0 <= template < len(TEMPLATES[family]):
        raise ValueError(f"template: expected 0 .. {len(TEMPLATES[family]) - 1}, got {template!r}")
    return "Q: " + TEMPLATES[family][template].format(w=word) + "\nA: "


def word_splits(n_test: int = N_TEST_WORDS, seed: int = WORD_SEED) -> dict[str, list[str]]:
    """``{"train": [...], "test": [...]}``: distinct lower-case words of 3 to 6 letters that occur at
    least 5 times in the Jargon File, shuffled with ``seed``; the last ``n_test`` are the test words."""
    counts: dict[str, int] = {}
    for w in re.findall(r"[A-Za-z]+", load_text()):
        if w.islower() and 3 <= len(w) <= 6:
            counts[w] = counts.get(w, 0) + 1
    words = sorted(w for w, c in counts.items() if c >= 5)
    random.Random(seed).shuffle(words)
    if not 0 < n_test < len(words):
        raise ValueError(f"n_test: expected 1 .. {len(words) - 1}, got {n_test!r}")
    return {"train": words[:-n_test], "test": words[-n_test:]}


def eval_examples(eval_set: str, words: list[str]) -> list[tuple[str, int, str]]:
    """``(family, template, word)`` of one evaluation set, in a fixed order."""
    if eval_set == "seen template":
        cells = [(f, 0) for f in SEEN]
    elif eval_set == "held-out template":
        cells = [(f, HELD_OUT_TEMPLATE) for f in SEEN]
    elif eval_set == "held-out family":
        cells = [(f, t) for f in HELD_OUT_FAMILIES for t in range(len(TEMPLATES[f]))]
    else:
        raise ValueError(f"eval_set: expected one of {EVAL_SETS}, got {eval_set!r}")
    return [(f, t, w) for f, t in cells for w in words]


def mask_prompt_targets(ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """Next-token targets of one row ``ids`` (1-D: the prompt's ``prompt_len`` tokens, then the
    response): ``ids[1:]``, with -100 at every position whose next token is still part of the prompt,
    so that only the response is scored. Position ``t`` predicts ``ids[t + 1]``; the first scored
    position is ``prompt_len - 1``, where the model reads the prompt's last token and writes the
    response's first."""
    if ids.dim() != 1:
        raise ValueError(f"ids: expected a 1-D tensor, got shape {tuple(ids.shape)}")
    if not 1 <= prompt_len < len(ids):
        raise ValueError(f"prompt_len: expected 1 .. {len(ids) - 1} (a prompt and a response of at least one "
                         f"token each), got {prompt_len!r}")
    targets = ids[1:].clone()
    targets[: prompt_len - 1] = -100
    return targets


def encode_example(vocab, family: str, template: int, word: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)`` of one example, both 1-D: the row is prompt + response + end marker, the
    inputs all of it but the last character, the targets :func:`mask_prompt_targets` (the loss falls
    on the response only)."""
    p = prompt(family, template, word)
    ids = vocab.encode(p + answer(family, word) + END)
    return ids[:-1], mask_prompt_targets(ids, len(p))


def collate(rows: list[tuple[torch.Tensor, torch.Tensor]], pad_id: int = 0):
    """Right-pad ``(inputs, targets)`` rows to one length: inputs with ``pad_id``, targets with -100.
    (Right padding is safe in a causal model: no real position attends to the padding after it.)"""
    L = max(len(x) for x, _ in rows)
    inputs = torch.full((len(rows), L), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), L), -100, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        inputs[i, : len(x)], targets[i, : len(y)] = x, y
    return inputs, targets


def batch_sampler(vocab, words: list[str], templates: tuple[int, ...], batch_size: int):
    """A ``get_batch(split, generator)`` for :func:`roadmap_lib.training.train`: each row a seen family,
    one of ``templates`` and a training word, drawn with ``generator``. The families and words are
    drawn first and the template last, so two conditions with the same seed see the same families
    and words in the same order."""
    def get_batch(split, generator):
        f = torch.randint(0, len(SEEN), (batch_size,), generator=generator).tolist()
        w = torch.randint(0, len(words), (batch_size,), generator=generator).tolist()
        t = torch.randint(0, len(templates), (batch_size,), generator=generator).tolist()
        return collate([encode_example(vocab, SEEN[a], templates[c], words[b]) for a, b, c in zip(f, w, t)])
    return get_batch


def response_loss(model, inputs, targets):
    """The fine-tuning loss: next-character cross-entropy on the response positions only (the -100
    targets of the prompt and the padding are skipped); :func:`roadmap_lib.objectives.lm_loss`."""
    return lm_loss(model, inputs, targets)


@torch.no_grad()
def greedy_answers(model, vocab, prompts: list[str], max_answer: int = MAX_ANSWER) -> list[str]:
    """The greedy response to each prompt, cut at the first end marker. Prompts of equal length are
    decoded together (no padding needed)."""
    model.eval()
    out: list[str | None] = [None] * len(prompts)
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    ctx = model.config.context_length
    for L, idx in by_len.items():
        ids = torch.stack([vocab.encode(prompts[i]) for i in idx])
        new = []
        for _ in range(min(max_answer, ctx - L)):
            nxt = model(ids)[:, -1].argmax(-1)
            new.append(nxt)
            ids = torch.cat([ids, nxt[:, None]], 1)
        gen = torch.stack(new, 1).tolist() if new else [[] for _ in idx]
        for i, row in zip(idx, gen):
            text = vocab.decode(row)
            out[i] = text.split(END, 1)[0] if END in text else text + "..."  # never ended: never right
    return out


@torch.no_grad()
def greedy_matches(model, vocab, pairs: list[tuple[str, str]], batch_size: int = 256) -> list[bool]:
    """For each ``(prompt, response)``: is ``response`` (plus the end marker) exactly the greedy
    continuation of ``prompt``? Greedy decoding writes a given response if and only if, with that
    response fed in (teacher forcing), the argmax at every response position is its next character:
    one forward pass per batch instead of one per generated character. The tests check it against
    :func:`greedy_answers`."""
    model.eval()
    out = []
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        rows = []
        for p, r in chunk:
            ids = vocab.encode(p + r + END)
            rows.append((ids[:-1], mask_prompt_targets(ids, len(p))))
        x, y = collate(rows)
        pred = model(x).argmax(-1)
        out += ((pred == y) | (y == -100)).all(1).tolist()
    return out


def score(model, vocab, words: list[str]) -> dict:
    """Exact match of the greedy answer on each evaluation set, per family too; on the held-out
    families also ``answers_a_seen_family``: the fraction of answers that are the right answer of a
    *seen* family instead (for example the word's first letter when asked for its last)."""
    res = {}
    for s in EVAL_SETS:
        ex = eval_examples(s, words)
        ok = greedy_matches(model, vocab, [(prompt(*e), answer(e[0], e[2])) for e in ex])
        fams = dict.fromkeys(f for f, _, _ in ex)
        res[s] = {"exact": sum(ok) / len(ok),
                  "by_family": {f: sum(o for o, e in zip(ok, ex) if e[0] == f) / sum(e[0] == f for e in ex)
                                for f in fams}}
        if s == "held-out family":
            other = greedy_matches(model, vocab, [(prompt(*e), answer(sf, e[2])) for e in ex for sf in SEEN])
            res[s]["answers_a_seen_family"] = sum(any(other[k * len(SEEN):(k + 1) * len(SEEN)])
                                                  for k in range(len(ex))) / len(ex)
    return res


def tune(condition: str, seed: int, model=None, vocab=None, words=None, *, stop_at: int | None = None):
    """Fine-tune (every parameter) a copy of the zoo GPT under ``condition`` with ``seed`` and the
    recipe ``RECIPE``; ``stop_at`` stops after that many steps on the same schedule. ``(model, result)``."""
    if condition not in CONDITIONS:
        raise ValueError(f"condition: expected one of {tuple(CONDITIONS)}, got {condition!r}")
    if model is None:
        model, vocab, _ = load_char_gpt()
    words = words or word_splits()["train"]
    r = RECIPE
    cfg = TrainConfig(max_steps=r["steps"], lr=r["lr"], warmup_steps=r["warmup_steps"], weight_decay=0.0,
                      eval_interval=r["steps"], eval_batches=1, seed=seed, progress=False)
    get_batch = batch_sampler(vocab, words, CONDITIONS[condition], r["batch_size"])
    with cpu_threads(1):
        result = train(model, get_batch, cfg, loss_fn=response_loss, stop_at=stop_at)
    model.eval()
    return model, result


def shown_examples(words: list[str]) -> list[tuple[str, int, str]]:
    """The examples the chapter prints, by a fixed rule: the first test word, each seen family with its
    held-out template, each held-out family with its template 0."""
    w = words[0]
    return [(f, HELD_OUT_TEMPLATE, w) for f in SEEN] + [(f, 0, w) for f in HELD_OUT_FAMILIES]


def run_cell(condition: str, seed: int, words=None) -> dict:
    """Tune one cell and score it; the row keeps the first ``LIVE_STEPS`` losses (what the chapter
    re-runs live) and the greedy answers to :func:`shown_examples`."""
    words = words or word_splits()
    start = time.process_time()
    model, result = tune(condition, seed, words=words["train"])
    seconds = time.process_time() - start
    vocab = load_char_gpt()[1]
    with cpu_threads(1):
        scores = score(model, vocab, words["test"])
        shown = greedy_answers(model, vocab, [prompt(*e) for e in shown_examples(words["test"])])
    return {"condition": condition, "seed": seed, "final_loss": result.log[-1]["loss"], "seconds": seconds,
            "first_losses": [r["loss"] for r in result.log[:LIVE_STEPS]], "scores": scores, "examples": shown}


def base_row(words=None) -> dict:
    words = words or word_splits()
    model, vocab, _ = load_char_gpt()
    with cpu_threads(1):
        return {"condition": BASE, "seed": None, "scores": score(model, vocab, words["test"]),
                "examples": greedy_answers(model, vocab, [prompt(*e) for e in shown_examples(words["test"])])}


def summarise(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """``{condition: {eval_set: {"mean", "min", "max", "values"}}}`` of exact match."""
    out: dict[str, dict[str, dict]] = {}
    for c in dict.fromkeys(r["condition"] for r in rows):
        rs = [r for r in rows if r["condition"] == c]
        out[c] = {}
        for s in EVAL_SETS:
            v = [r["scores"][s]["exact"] for r in rs]
            out[c][s] = {"mean": sum(v) / len(v), "min": min(v), "max": max(v), "values": v}
    return out


def build(root: Path) -> dict:
    """Both conditions x 3 seeds, plus the untuned model; write ``RESULTS`` into ``root``."""
    from roadmap_lib.fileio import atomic_write_text

    start = time.perf_counter()
    words = word_splits()
    rows = [base_row(words)] + [run_cell(c, seed, words) for seed in SEEDS for c in CONDITIONS]
    info = {"families": {"seen": list(SEEN), "held out": list(HELD_OUT_FAMILIES)}, "templates": TEMPLATES,
            "held_out_template": HELD_OUT_TEMPLATE, "conditions": {c: list(t) for c, t in CONDITIONS.items()},
            "words": {"train": len(words["train"]), "test": words["test"]}, "recipe": RECIPE,
            "shown_examples": shown_examples(words["test"]), "seeds": list(SEEDS), "runs": rows,
            "seconds": time.perf_counter() - start, "command": "python -m roadmap_lib build 10-instruct",
            "torch": torch.__version__}
    atomic_write_text(Path(root) / RESULTS, json.dumps(info, indent=1))
    return info
