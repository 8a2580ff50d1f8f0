"""Chapter 21's benchmark: "which phrase really comes next?" built from the Jargon File, scored
by log-likelihood with the zoo's character GPT, its perturbed versions, and a likelihood judge.

An item is a 48-character window of a Jargon File paragraph that ends inside a word (the context)
and four phrases: the text that really follows (the rest of the word and up to two more words),
and three such phrases cut from random other places of the same split. Items come from the
validation split (the last 10% of the text, which the zoo model never trained on) or, for the
contamination study, from the training split (the first 90%).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

import torch

from roadmap_lib.data import CharVocab, load_text
from roadmap_lib.evaluation import (
    MCItem,
    continuation_logliks,
    multiple_choice_metrics,
    score_choices,
)

CONTEXT_CHARS = 48
N_CHOICES = 4


def split_text(split: str) -> str:
    """The zoo char GPT's split of the Jargon File: "train" (first 90%) or "val" (last 10%),
    cut where :class:`roadmap_lib.data.CharLMData` cuts it."""
    text = load_text()
    n_val = int(len(text) * 0.1)
    if split == "train":
        return text[:-n_val]
    if split == "val":
        return text[-n_val:]
    raise ValueError(f"split: expected 'train' or 'val', got {split!r}")


def _paragraphs(text: str) -> list[str]:
    """Paragraphs (blank-line separated; lines inside wrapped at about 72 characters) long enough
    for a context and a phrase."""
    return [p for p in text.split("\n\n") if len(p) >= CONTEXT_CHARS + 40]


def _fragment(p: str, rng: random.Random) -> tuple[int, str] | None:
    """A cut inside a word of ``p`` of 6+ letters (at least 2 letters kept on each side) and the
    phrase from the cut: the rest of that word and 0-2 more words on the same line."""
    words = [m for m in re.finditer(r"[A-Za-z]{6,}", p) if m.start() > CONTEXT_CHARS]
    if not words:
        return None
    w = rng.choice(words)
    cut = rng.randint(w.start() + 2, w.end() - 2)
    rest = p[cut:].split(" ")
    phrase = " ".join(rest[:1 + rng.randint(0, 2)])
    if "\n" in phrase or len(phrase) > 28:
        return None
    return cut, phrase


def build_items(split: str, n: int, seed: int) -> list[MCItem]:
    """``n`` items from ``split`` (seeded). The context is the 48 characters of raw text (line
    breaks included) before a cut inside a word; the real phrase completes that word and runs on
    for 0-2 words on the same line; the three distractors are such phrases cut from random other
    places of the split. The gold position is uniform."""
    rng = random.Random(seed)
    paras = _paragraphs(split_text(split))
    items = []
    while len(items) < n:
        p = rng.choice(paras)
        frag = _fragment(p, rng)
        if frag is None:
            continue
        cut, gold_phrase = frag
        choices = [gold_phrase]
        while len(choices) < N_CHOICES:
            other = _fragment(rng.choice(paras), rng)
            if other is not None and other[1] not in choices:
                choices.append(other[1])
        gold = rng.randrange(N_CHOICES)
        choices[0], choices[gold] = choices[gold], choices[0]
        items.append(MCItem(p[cut - CONTEXT_CHARS:cut], choices, gold))
    return items


def scorer(model, vocab: CharVocab) -> Callable[[Sequence[MCItem]], dict[str, torch.Tensor]]:
    """``score(items) -> {"acc", "acc_norm", "logliks"}``: the chapter's evaluation of ``model``."""
    def score(items):
        ll = score_choices(model, lambda t: vocab.encode(t).tolist(), items,
                           max_length=model.config.context_length)
        return {**multiple_choice_metrics(ll, items), "logliks": ll}
    return score


# --------------------------------------------------------------------------------------- perturbations

def add_typos(text: str, rate: float, rng: random.Random) -> str:
    """Swap each pair of neighbouring letters with probability ``rate`` (a typo model)."""
    chars = list(text)
    i = 0
    while i < len(chars) - 1:
        if chars[i].isalpha() and chars[i + 1].isalpha() and rng.random() < rate:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
            i += 2
        else:
            i += 1
    return "".join(chars)


def perturb(items: Sequence[MCItem], kind: str, strength: float, seed: int = 0) -> list[MCItem]:
    """A perturbed copy of ``items``; choices are untouched, only the context changes.

    ``kind``: "typos" (neighbouring letters swapped at rate ``strength``), "truncate" (keep the
    last ``strength`` characters of the context: how much context the model needs), "upper"
    (upper-case a share ``strength`` of the context's words: a change of surface form only).
    """
    rng = random.Random(seed)
    out = []
    for it in items:
        if kind == "typos":
            ctx = add_typos(it.context, strength, rng)
        elif kind == "truncate":
            ctx = it.context[-max(1, int(strength)):]
        elif kind == "upper":
            ctx = " ".join(w.upper() if rng.random() < strength else w for w in it.context.split(" "))
        else:
            raise ValueError(f"kind: expected 'typos', 'truncate' or 'upper', got {kind!r}")
        out.append(MCItem(ctx, list(it.choices), it.gold))
    return out


# --------------------------------------------------------------------------------------- contamination

def leak(model, vocab: CharVocab, items: Sequence[MCItem], *, epochs: int, seed: int, lr: float = 1e-3,
         batch_size: int = 10):
    """Fine-tune ``model`` (in place; returns it in eval mode) on the text of ``items`` (context and
    real phrase), ``epochs`` passes in seeded random order: a benchmark leaked into training."""
    keep = model.config.context_length + 1
    texts = [vocab.encode(it.context + it.choices[it.gold])[-keep:] for it in items]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(texts), generator=g).tolist()
        for start in range(0, len(order), batch_size):
            batch = [texts[i] for i in order[start:start + batch_size]]
            width = max(len(t) for t in batch)
            ids = torch.stack([torch.nn.functional.pad(t, (0, width - len(t))) for t in batch])
            targets = ids[:, 1:].clone()
            for r, t in enumerate(batch):
                targets[r, len(t) - 1:] = -100
            logits = model(ids[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


# --------------------------------------------------------------------------------------- a likelihood judge

def judge_pairs(items: Sequence[MCItem], kind: str = "real") -> list[tuple[str, str, str]]:
    """``(context, first answer, second answer)`` per item. ``kind="real"``: the real phrase and the
    next distractor (the judge should prefer the real one); ``"tie"``: two distractors (neither is
    right: a fair judge splits its verdicts evenly between the positions)."""
    if kind not in ("real", "tie"):
        raise ValueError(f"kind: expected 'real' or 'tie', got {kind!r}")
    out = []
    for it in items:
        n = len(it.choices)
        first = it.gold if kind == "real" else (it.gold + 2) % n
        out.append((it.context, it.choices[first], it.choices[(it.gold + 1) % n]))
    return out


@torch.no_grad()
def judge_scores(model, vocab: CharVocab, triples: Sequence[tuple[str, str, str]]) -> torch.Tensor:
    """What a likelihood "judge" reads -> ``(n, 2)``: the mean log-probability per character of the
    answer shown first and of the answer shown second. The judge reads the context completed by
    the first answer, a line break, then the context completed by the second,
    ``ctx + A + "\n" + ctx + B``: B is read with A inside the model's 64-character window and A
    without B, so the scores can depend on the order, as an LLM judge's can."""
    window = model.config.context_length
    first, second = [], []
    for ctx, a, b in triples:
        first.append((vocab.encode(ctx).tolist(), vocab.encode(a).tolist()))
        second.append((vocab.encode(ctx + a + "\n" + ctx).tolist(), vocab.encode(b).tolist()))
    la = continuation_logliks(model, first, max_length=window)
    lb = continuation_logliks(model, second, max_length=window)
    na = torch.tensor([len(a) for _, a, _ in triples], dtype=torch.float64)
    nb = torch.tensor([len(b) for _, _, b in triples], dtype=torch.float64)
    return torch.stack([la / na, lb / nb], dim=1)


def verdicts(scores: torch.Tensor, bias: float = 0.0) -> torch.Tensor:
    """The judge's choice per pair, ``(n,)`` 0 (the answer shown first) or 1 (shown second): the
    higher score wins, ties to the first. ``bias`` (nats per character) is added to the first
    answer's score: a *scripted* preference for the first position, to see what swapping finds."""
    return (scores[:, 1] > scores[:, 0] + bias).long()


def position_bias(scores_ab: torch.Tensor, scores_ba: torch.Tensor, bias: float = 0.0) -> dict[str, torch.Tensor]:
    """The swap test. ``scores_ab``: :func:`judge_scores` of the pairs as given (answer A first);
    ``scores_ba``: of the same pairs swapped. Per pair (float tensors): ``a_wins_ab`` (A chosen when
    shown first), ``a_wins_ba`` (A chosen when shown second), ``consistent`` (the same answer in
    both orders), ``shown_first_chosen`` (share of the two verdicts that went to whichever answer
    was shown first: 0, 0.5 or 1; a judge without position bias averages 0.5 on pairs of equals),
    ``a_wins_both`` (A chosen in both orders: the verdict after swapping, inconsistent pairs count
    as ties, 0.5)."""
    ab, ba = verdicts(scores_ab, bias), verdicts(scores_ba, bias)
    win_ab, win_ba = (ab == 0).double(), (ba == 1).double()
    return {"a_wins_ab": win_ab, "a_wins_ba": win_ba, "consistent": (win_ab == win_ba).double(),
            "shown_first_chosen": ((ab == 0).double() + (ba == 0).double()) / 2,
            "a_wins_both": (win_ab + win_ba) / 2}


def run_judge(model, vocab: CharVocab, items: Sequence[MCItem], kind: str = "real") -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores_ab, scores_ba)`` of :func:`judge_pairs` ``(items, kind)`` in both orders."""
    triples = judge_pairs(items, kind)
    return judge_scores(model, vocab, triples), judge_scores(model, vocab, [(c, b, a) for c, a, b in triples])


__all__ = ["CONTEXT_CHARS", "N_CHOICES", "add_typos", "build_items", "judge_pairs", "judge_scores", "leak", "perturb",
           "position_bias", "run_judge", "scorer", "split_text", "verdicts"]
