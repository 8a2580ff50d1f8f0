"""Chapter 12's task: character-level language modelling with an associative-recall probe inside.

Every batch has two halves, both of ``context`` characters:

- **text**: random windows of the Jargon File, next-character targets everywhere (local structure:
  spelling, words, punctuation);
- **recall**: ``n_pairs`` key–value pairs (a lower-case letter, then a digit) at the start, a stretch
  of Jargon File text, then ``|`` and queries: a key seen at the start, after which the model must
  produce its digit. Only those digits are scored. The nearest query sits ``gap`` characters after
  the last pair, so a mechanism that cannot see that far back cannot answer (chance is 1 in 10).

Keys of one sequence are distinct letters, values random digits, queries drawn with replacement,
all from a ``torch.Generator``: a seed fixes every batch.
"""

from __future__ import annotations

import string

import torch

from roadmap_lib.data import CharLMData

IGNORE = -100


class RecallLM:
    """``get_batch(split, generator)`` → ``(inputs, targets)`` of shape ``(batch, context)``; rows
    ``[: batch // 2]`` are text, the rest recall sequences (targets ``-100`` except the answers)."""

    def __init__(self, data: CharLMData, *, batch_size: int = 16, n_pairs: int = 8, gap: int = 64) -> None:
        self.data, self.batch_size, self.n_pairs, self.gap = data, batch_size, n_pairs, gap
        L = data.context
        if not 1 <= n_pairs <= 26:
            raise ValueError(f"n_pairs: expected 1 to 26 (one letter per key), got {n_pairs}")
        if batch_size < 2 or batch_size % 2:
            raise ValueError(f"batch_size: expected an even int >= 2 (half text, half recall), got {batch_size}")
        self.query_start = 2 * n_pairs + gap
        if self.query_start + 3 > L + 1:
            raise ValueError(f"gap: 2 * n_pairs + gap = {self.query_start} leaves no room for a query in "
                             f"context={L}")
        v = data.vocab
        self.letters = v.encode(string.ascii_lowercase)
        self.digits = v.encode(string.digits)
        self.bar = int(v.encode("|")[0])

    def recall_batch(self, split: str, n: int, generator: torch.Generator | None = None):
        L, P = self.data.context + 1, self.n_pairs  # L + 1 characters give L inputs and L targets
        fx, fy = self.data.get_batch(split, generator, batch_size=n)
        x = torch.cat([fx, fy[:, -1:]], dim=1)
        keys = torch.stack([torch.randperm(26, generator=generator)[:P] for _ in range(n)])  # (n, P)
        vals = torch.randint(0, 10, (n, P), generator=generator)
        x[:, 0:2 * P:2] = self.letters[keys]
        x[:, 1:2 * P:2] = self.digits[vals]
        q0 = self.query_start
        x[:, q0 - 1] = self.bar
        n_q = (L - q0) // 2
        which = torch.randint(0, P, (n, n_q), generator=generator)
        x[:, q0:q0 + 2 * n_q:2] = self.letters[torch.gather(keys, 1, which)]
        x[:, q0 + 1:q0 + 2 * n_q:2] = self.digits[torch.gather(vals, 1, which)]
        inputs = x[:, :-1]
        targets = torch.full_like(inputs, IGNORE)
        targets[:, q0:q0 + 2 * n_q - 1:2] = x[:, q0 + 1:q0 + 2 * n_q:2]  # after each query key, its digit
        return inputs, targets

    def get_batch(self, split: str, generator: torch.Generator | None = None):
        half = self.batch_size // 2
        text_x, text_y = self.data.get_batch(split, generator, batch_size=half)
        rec_x, rec_y = self.recall_batch(split, half, generator)
        return torch.cat([text_x, rec_x]), torch.cat([text_y, rec_y])


def first_queries(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the scored recall positions whose key is asked for the first time. A repeated
    key's answer also sits at its earlier query, nearby; a first one is only among the pairs."""
    out = torch.zeros_like(targets, dtype=torch.bool)
    for row in range(inputs.shape[0]):
        seen = set()
        for t in (targets[row] != IGNORE).nonzero().flatten().tolist():
            key = int(inputs[row, t])
            out[row, t] = key not in seen
            seen.add(key)
    return out


@torch.no_grad()
def evaluate(model, task: RecallLM, *, batches: int = 8, seed: int = 1234) -> dict[str, float]:
    """Held-out metrics on the validation split with fixed batches: text loss (nats/char), recall
    accuracy and loss on all query answers, and accuracy on first and on repeated queries."""
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    text_loss, rec_loss = 0.0, 0.0
    hits = {"all": [0, 0], "first": [0, 0], "repeat": [0, 0]}  # [correct, total]
    for _ in range(batches):
        x, y = task.get_batch("val", g)
        logits = model(x)
        half = task.batch_size // 2
        text_loss += float(torch.nn.functional.cross_entropy(logits[:half].flatten(0, 1), y[:half].flatten()))
        rl, ry = logits[half:], y[half:]
        scored = ry != IGNORE
        first = first_queries(x[half:], ry)
        rec_loss += float(torch.nn.functional.cross_entropy(rl[scored], ry[scored], reduction="sum"))
        right = rl.argmax(-1) == ry
        for name, m in (("all", scored), ("first", first), ("repeat", scored & ~first)):
            hits[name][0] += int((right & m).sum())
            hits[name][1] += int(m.sum())
    model.train(was)
    return {"text_loss": text_loss / batches, "recall_acc": hits["all"][0] / hits["all"][1],
            "recall_loss": rec_loss / hits["all"][1], "recall_first_acc": hits["first"][0] / hits["first"][1],
            "recall_repeat_acc": hits["repeat"][0] / hits["repeat"][1]}


def task_loss(model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Text loss + recall loss, each a mean over its own scored positions (so the few recall answers
    weigh as much as the many text characters), plus the auxiliary losses a MoE model reports."""
    logits = model(inputs)
    half = inputs.shape[0] // 2
    ce = torch.nn.functional.cross_entropy
    loss = ce(logits[:half].flatten(0, 1), targets[:half].flatten(), ignore_index=IGNORE)
    loss = loss + ce(logits[half:].flatten(0, 1), targets[half:].flatten(), ignore_index=IGNORE)
    aux = getattr(model, "aux_loss", None)
    return loss + aux() if aux is not None else loss


__all__ = ["IGNORE", "RecallLM", "evaluate", "first_queries", "task_loss"]
