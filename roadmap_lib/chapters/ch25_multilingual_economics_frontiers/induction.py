"""Chapter 25's interpretability model: a 2-layer GPT trained to copy repeated random sequences.

A sequence is ``half`` random tokens followed by the same tokens again. The first half cannot be
predicted; the second half can, by *induction* (:cite:`olsson2022context`): find the earlier
occurrence of the current token, and copy the token that followed it. A 2-layer attention model
learns it with a previous-token head in layer 0 and an induction head in layer 1.

    python -m roadmap_lib build induction-gpt   # writes data/zoo/25-induction-gpt.{safetensors,json}
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from roadmap_lib.checkpoint import load_model, save_model
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.training import TrainConfig, train

NAME = "25-induction-gpt"
VOCAB, HALF = 48, 16
CONFIG = {"vocab_size": VOCAB, "context_length": 2 * HALF, "d_model": 64, "n_layers": 2, "n_heads": 4,
              "attention_backend": "math"}
STEPS, BATCH, LR, SEED = 1500, 64, 3e-3, 0


def repeated_batch(batch: int, gen: torch.Generator, *, half: int = HALF, vocab: int = VOCAB):
    """(inputs, targets), each (batch, 2 * half): random tokens then the same tokens again; the
    targets of the unpredictable first half are -100 (ignored by the loss)."""
    first = torch.randint(0, vocab, (batch, half), generator=gen)
    seq = torch.cat([first, first], dim=1)
    targets = torch.cat([seq[:, 1:], torch.full((batch, 1), -100)], dim=1)
    targets[:, : half - 1] = -100
    return seq, targets


def second_half_loss(model, n: int = 256, seed: int = 1234) -> float:
    """Mean next-token loss (nats) on the predictable second half of ``n`` fresh sequences."""
    ids, targets = repeated_batch(n, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        logits = model(ids)
    return float(F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100))


def build(zoo_dir: Path, steps: int = STEPS, progress: bool = False) -> dict:
    torch.manual_seed(SEED)
    model = GPT(GPTConfig(**CONFIG))
    cfg = TrainConfig(max_steps=steps, lr=LR, warmup_steps=min(100, steps), eval_interval=steps,
                      eval_batches=2, seed=SEED, progress=progress)
    start = time.perf_counter()
    result = train(model, lambda split, gen: repeated_batch(BATCH, gen), cfg)
    model.eval()
    record = {"name": NAME, "config": CONFIG, "steps": steps, "batch": BATCH, "lr": LR, "seed": SEED,
              "second_half_loss": second_half_loss(model), "chance_loss": float(torch.log(torch.tensor(VOCAB))),
              "final_train_loss": result.log[-1]["loss"],
              "train_seconds": round(time.perf_counter() - start, 1),
              "command": f"python -m roadmap_lib build {NAME}"}
    zoo_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, zoo_dir / f"{NAME}.safetensors", config=CONFIG)
    atomic_write_text(zoo_dir / f"{NAME}.json", json.dumps(record, indent=1) + "\n")
    return record


def load(zoo_dir: Path | None = None):
    """(model in eval mode, record) of the shipped induction GPT."""
    from roadmap_lib import data_path

    zoo_dir = Path(zoo_dir) if zoo_dir is not None else data_path("zoo")
    record = json.loads((zoo_dir / f"{NAME}.json").read_text(encoding="utf-8"))
    model = GPT(GPTConfig(**record["config"]))
    load_model(model, zoo_dir / f"{NAME}.safetensors")
    return model.eval(), record


def patching_pair(n: int, source: int, seed: int, *, half: int = HALF, vocab: int = VOCAB):
    """(clean, corrupt, query): ``n`` repeated sequences, and the same with the token at position
    ``source`` (first half) replaced by another random token *in the first half only*.

    At ``query = source + half - 1`` the clean model should predict the token at ``source`` by
    induction; in the corrupt run that earlier occurrence holds a different token.
    """
    if not 1 <= source < half:
        raise ValueError(f"source: expected a position in [1, {half}), got {source!r}")
    gen = torch.Generator().manual_seed(seed)
    clean, _ = repeated_batch(n, gen, half=half, vocab=vocab)
    corrupt = clean.clone()
    shift = torch.randint(1, vocab, (n,), generator=gen)
    corrupt[:, source] = (clean[:, source] + shift) % vocab
    return clean, corrupt, source + half - 1


def answer_logprob(logits: torch.Tensor, clean: torch.Tensor, query: int, source: int) -> float:
    """Mean log-probability at ``query`` of the clean token at ``source`` (the induction answer)."""
    logp = torch.log_softmax(logits[:, query].double(), dim=-1)
    return float(logp.gather(1, clean[:, source : source + 1]).mean().detach())


def lens_probs(lens_logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """(states, batch, L, vocab) logit-lens logits -> (states, L - 1): mean probability of the
    actual next token at each position."""
    probs = torch.softmax(lens_logits[:, :, :-1].double(), dim=-1)
    nxt = ids[:, 1:].expand(probs.shape[0], -1, -1).unsqueeze(-1)
    return probs.gather(-1, nxt).squeeze(-1).mean(1)


def probe_study(model, n_train: int = 32, n_test: int = 16, seed: int = 0) -> dict[str, list[float]]:
    """Held-out accuracy of linear probes on each residual state at the second-half positions:
    ``"next token"`` (the token to copy) and ``"current token"`` (the input at that position)."""
    from roadmap_lib.interpret import probe_accuracy, residual_states

    gen = torch.Generator().manual_seed(seed)
    data = {}
    for part, n in (("train", n_train), ("test", n_test)):
        ids, _ = repeated_batch(n, gen)
        states = residual_states(model, ids)[:, :, HALF:-1]  # (states, n, positions, d)
        data[part] = (states.flatten(1, 2), {"next token": ids[:, HALF + 1:].flatten(),
                                             "current token": ids[:, HALF:-1].flatten()})
    out = {}
    for label in ("next token", "current token"):
        out[label] = [probe_accuracy(data["train"][0][s], data["train"][1][label], data["test"][0][s],
                                     data["test"][1][label], seed=seed)
                      for s in range(data["train"][0].shape[0])]
    return out


def period_loss(model, half: int, n: int = 256, seed: int = 1234) -> float:
    """Second-half loss on sequences that repeat after ``half`` tokens (trained: :data:`HALF`)."""
    ids, targets = repeated_batch(n, torch.Generator().manual_seed(seed), half=half)
    with torch.no_grad():
        logits = model(ids)
    return float(F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100))
