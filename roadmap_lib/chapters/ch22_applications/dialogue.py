"""Dialogue with turn structure: the zoo character GPT fine-tuned on templated exchanges, with the
loss on the assistant's turns only.

An exchange (``Exchange.text``) has three user turns (``u:``) and three assistant turns (``a:``),
one per line, within the model's 64-character context::

    u:i am eve        <- the two facts, in either order
    a:hi eve
    u:i like jazz
    a:ok jazz
    u:name?           <- or "likes?"
    a:eve             <- the answer must be copied from an earlier turn

Split (``make_exchanges``): every (name, thing) pair gives 4 exchanges (2 orders x 2 questions); a
quarter of the *pairs*, drawn by ``seed``, are held out, so every test name and thing was seen in
training, never together. The test set is the first ``N_TEST`` held-out exchanges after a seeded
shuffle.

Training (``train_sft``) is supervised fine-tuning as ``trl``'s ``SFTTrainer`` does it with
completion-only loss: the cross-entropy of the next character, counted only where that character
belongs to an assistant turn (its text and the newline that ends it); every user character, and
the ``a:`` marker itself, has target ``-100``. Evaluation (``answer_turns``) is teacher-forced: for
each assistant turn, the gold history up to its ``a:`` goes in, the model continues greedily to the
newline, and the turn is right if it equals the gold text exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from roadmap_lib.generation import greedy

NAMES = ("amy", "bob", "cal", "dan", "eve", "finn", "gus", "hal", "ivy", "jan", "kim", "leo", "max",
         "ned", "ola", "pam", "quin", "rex", "sam", "tom", "uma", "val", "wes", "xena", "yan", "zoe")
THINGS = ("tea", "jazz", "cats", "rain", "lisp", "vim", "unix", "perl", "rust", "cake", "pie", "go",
          "chess", "dogs", "math", "snow", "golf", "beer", "soup", "hats")
QUESTIONS = {"name": "name?", "thing": "likes?"}
USER, ASSISTANT = "u:", "a:"
N_TEST = 200
IGNORE = -100
RECIPE = {"steps": 150, "batch_size": 16, "lr": 1e-3}
MAX_TURN = 8  # characters an assistant turn may take, newline included
CONTEXT = 64  # the zoo model's context; a longer decode keeps the last 64 characters


def _ids(vocab, text: str) -> list[int]:
    return torch.as_tensor(vocab.encode(text)).tolist()  # CharVocab.encode gives a tensor


@dataclass(frozen=True)
class Exchange:
    name: str
    thing: str
    name_first: bool
    question: str  # "name" or "thing"

    def turns(self) -> list[tuple[str, str]]:
        """``(role, text)`` per turn, role ``"u"`` or ``"a"``."""
        facts = [("u", f"i am {self.name}"), ("a", f"hi {self.name}")]
        likes = [("u", f"i like {self.thing}"), ("a", f"ok {self.thing}")]
        answer = self.name if self.question == "name" else self.thing
        return (facts + likes if self.name_first else likes + facts) + \
            [("u", QUESTIONS[self.question]), ("a", answer)]

    def text(self) -> str:
        return "".join(f"{role}:{t}\n" for role, t in self.turns())


def make_exchanges(seed: int = 0) -> tuple[list[Exchange], list[Exchange]]:
    """``(train, test)`` by the module docstring's rule."""
    pairs = [(n, t) for n in NAMES for t in THINGS]
    rng = random.Random(seed)
    held = set(rng.sample(pairs, len(pairs) // 4))
    train, test = [], []
    for n, t in pairs:
        for first in (True, False):
            for q in QUESTIONS:
                (test if (n, t) in held else train).append(Exchange(n, t, first, q))
    rng.shuffle(test)
    return train, test[:N_TEST]


def encode_with_targets(vocab, text: str) -> tuple[list[int], list[int]]:
    """``(inputs, targets)`` of one exchange for next-character training: ``inputs = ids[:-1]``;
    ``targets[i] = ids[i + 1]`` where character ``i + 1`` is inside an assistant turn (after its
    ``a:``, up to and including its newline), else ``-100``."""
    if not text.endswith("\n"):
        raise ValueError(f"text: expected an exchange ending in a newline, got {text[-10:]!r}")
    ids = _ids(vocab, text)
    counted = []
    for line in text.splitlines(keepends=True):
        is_assistant = line.startswith(ASSISTANT)
        counted += [False] * 2 + [is_assistant] * (len(line) - 2)
    targets = [t if c else IGNORE for t, c in zip(ids[1:], counted[1:])]
    return ids[:-1], targets


def batch(vocab, exchanges: Sequence[Exchange]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(inputs, targets)`` (padding: newline ids, targets ``-100``)."""
    rows = [encode_with_targets(vocab, ex.text()) for ex in exchanges]
    width = max(len(i) for i, _ in rows)
    pad = _ids(vocab, "\n")[0]
    inputs = torch.full((len(rows), width), pad, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for r, (i, t) in enumerate(rows):
        inputs[r, : len(i)] = torch.tensor(i)
        targets[r, : len(t)] = torch.tensor(t)
    return inputs, targets


def sft_loss(model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the counted (assistant) characters."""
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


def train_sft(model, vocab, train: Sequence[Exchange], *, steps: int = RECIPE["steps"],
              batch_size: int = RECIPE["batch_size"], lr: float = RECIPE["lr"], seed: int = 0) -> list[float]:
    """Fine-tune ``model`` in place with AdamW on random batches of ``train``; the loss per step."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        loss = sft_loss(model, *batch(vocab, rng.sample(list(train), batch_size)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return losses


def prompts(ex: Exchange) -> list[tuple[str, str]]:
    """Per assistant turn: ``(history up to and including its "a:", gold text)``."""
    out, history = [], ""
    for role, t in ex.turns():
        if role == "a":
            out.append((history + ASSISTANT, t))
        history += f"{role}:{t}\n"
    return out


@torch.no_grad()
def answer_turns(model, vocab, exchanges: Sequence[Exchange]) -> list[list[str]]:
    """The model's three assistant turns per exchange, teacher-forced (see the module docstring);
    prompts of one length are decoded as one batch."""
    model.eval()
    jobs = [(e, k, p) for e, ex in enumerate(exchanges) for k, (p, _) in enumerate(prompts(ex))]
    out = [[""] * 3 for _ in exchanges]
    newline = _ids(vocab, "\n")[0]
    by_len: dict[int, list] = {}
    for job in jobs:
        by_len.setdefault(len(job[2]), []).append(job)
    for group in by_len.values():
        ids = torch.tensor([_ids(vocab, p) for _, _, p in group])
        new = greedy(model, ids, MAX_TURN, eos_token_id=newline, context_length=CONTEXT)[:, ids.shape[1]:]
        for (e, k, _), row in zip(group, new.tolist()):
            text = vocab.decode(row)
            out[e][k] = text.split("\n")[0]
    return out


def nearest_turn(train: Sequence[Exchange], exchanges: Sequence[Exchange]) -> list[list[str]]:
    """The retrieval baseline: for each assistant turn, the gold answer of the training prompt (same
    turn position) most similar in TF-IDF of character 2-4-grams (cosine; first on ties)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    out = [[""] * 3 for _ in exchanges]
    for k in range(3):
        memory = [prompts(ex)[k] for ex in train]
        vec = TfidfVectorizer(analyzer="char", ngram_range=(2, 4)).fit([p for p, _ in memory])
        keys = vec.transform([p for p, _ in memory])
        queries = vec.transform([prompts(ex)[k][0] for ex in exchanges])
        best = (queries @ keys.T).toarray().argmax(axis=1)
        for e, j in enumerate(best):
            out[e][k] = memory[j][1]
    return out


def turn_scores(answers: Sequence[Sequence[str]], exchanges: Sequence[Exchange]) -> torch.Tensor:
    """``(n, 3)`` float64: 1 where the assistant turn equals the gold text exactly."""
    if len(answers) != len(exchanges):
        raise ValueError(f"answers: expected one list per exchange ({len(exchanges)}), got {len(answers)}")
    return torch.tensor([[float(a == g) for a, (_, g) in zip(ans, prompts(ex))] for ans, ex in zip(answers, exchanges)],
                        dtype=torch.float64)


def run_study(seeds: Sequence[int] = (0, 1, 2), steps: int = RECIPE["steps"]) -> dict:
    """Fine-tune the zoo character GPT once per seed; record each seed's test answers and losses, and
    the untuned model's answers."""
    from roadmap_lib.zoo import load_char_gpt

    train, test = make_exchanges(0)
    record = {"recipe": {**RECIPE, "steps": steps}, "n_train": len(train), "n_test": len(test), "seeds": {}}
    model, vocab, _ = load_char_gpt()
    record["untuned"] = answer_turns(model, vocab, test)
    for seed in seeds:
        model, vocab, _ = load_char_gpt()
        losses = train_sft(model, vocab, train, steps=steps, seed=seed)
        answers = answer_turns(model, vocab, test)
        s = turn_scores(answers, test)
        record["seeds"][str(seed)] = {"answers": answers, "losses": [round(x, 4) for x in losses[::10]],
                                      "turn_accuracy": s.mean().item(), "answer_em": s[:, 2].mean().item()}
    return record


__all__ = ["Exchange", "NAMES", "QUESTIONS", "RECIPE", "THINGS", "answer_turns", "batch", "encode_with_targets",
           "make_exchanges", "nearest_turn", "prompts", "run_study", "sft_loss", "train_sft", "turn_scores"]
