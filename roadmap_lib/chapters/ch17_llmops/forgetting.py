"""Chapter 17's continual-learning experiment: the character GPT of chapter 07 (trained on English
prose, the Jargon File) is fine-tuned on Zetan, the invented language of ``data/tasks/translation``
(the new domain). Every weight trains (full fine-tuning), with AdamW, on the same seeded batches.

Methods (:data:`METHODS`): plain fine-tuning; *replay*, a fixed share of each batch from the old
corpus (:func:`roadmap_lib.llmops.replay_batches`); *L2 to init* (:func:`roadmap_lib.llmops.l2_to_init`);
*EWC* (:func:`roadmap_lib.llmops.ewc`, weighted by :func:`roadmap_lib.llmops.diagonal_fisher`).
Every :data:`EVAL_EVERY` steps both domains' validation losses (nats per character, fixed batches)
are measured: the old domain's rise is the forgetting, the new domain's fall the gain.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from roadmap_lib import data_path
from roadmap_lib.data import CharLMData, CharVocab, load_task
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.llmops import diagonal_fisher, ewc, l2_to_init, replay_batches
from roadmap_lib.measure import cpu_threads
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.training import TrainConfig, evaluate, train
from roadmap_lib.zoo import load_checkpoint

CONTEXT = 32
BATCH = 8
STEPS = 100
LR = 3e-3  # chapter 16's learning rate for full fine-tuning of this model on Zetan
EVAL_EVERY = 25
EVAL_BATCHES = 10
EVAL_SEED = 1234
SEEDS = (0, 1, 2)
#: Old-domain batches behind EWC's Fisher estimate.
FISHER_BATCHES = 32


@dataclass(frozen=True)
class Method:
    name: str
    replay: float = 0.0  # share of each batch from the old corpus
    l2: float = 0.0  # strength of the pull to the initial weights
    ewc: float = 0.0  # strength of the Fisher-weighted pull (EWC)


#: One strength each, not tuned: replay of 1 and 4 rows in a batch of 8; λ = 0.01 for L2 to init
#: (a pilot on seed 0 put its forgetting between plain fine-tuning and replay). EWC's λ = 1e4: of the
#: pilot strengths 1e3, 1e4 and 1e5 on seed 0 (forgetting 2.28, 1.15, 0.74; Zetan gain 3.50, 3.46,
#: 3.32), the strongest whose gain stayed within 0.05 of L2 to init's, so that the two pulls are
#: compared at about the same gain.
METHODS = {m.name: m for m in [
    Method("fine-tune"),
    Method("replay 12.5%", replay=0.125),
    Method("replay 50%", replay=0.5),
    Method("L2 to init", l2=0.01),
    Method("EWC", ewc=1e4),
]}


def load_model():
    """The shipped ``gpt-char-jargon`` with PyTorch's fused attention (same numbers, faster) and
    its vocabulary."""
    model, vocab, _ = load_checkpoint("gpt-char-jargon",
                                      lambda c: GPT(GPTConfig(**c, attention_backend="sdpa")),
                                      vocab_from_list=CharVocab)
    return model, vocab


def domains(vocab) -> dict[str, CharLMData]:
    """``{"old": English (the Jargon File's own split), "new": Zetan}``, same context and batch."""
    zetan = "\n".join(row["tgt"] for row in load_task("translation", "train"))
    return {"old": CharLMData(context=CONTEXT, batch_size=BATCH, vocab=vocab),
            "new": CharLMData(zetan, context=CONTEXT, batch_size=BATCH, vocab=vocab)}


def lm_loss(model, x, y):
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def losses(model, data: dict[str, CharLMData]) -> dict[str, float]:
    """Validation loss on each domain, on the same fixed batches every time."""
    return {k: evaluate(model, d.get_batch, lm_loss, batches=EVAL_BATCHES, seed=EVAL_SEED) for k, d in data.items()}


def run(method: Method | str, seed: int = 0, steps: int = STEPS) -> dict:
    """Fine-tune with one method and seed (one thread). The record holds both domains' validation
    losses before and after, the training losses and the seconds it took."""
    method = METHODS[method] if isinstance(method, str) else method
    start = time.perf_counter()
    with cpu_threads(1):
        model, vocab = load_model()
        data = domains(vocab)
        before = losses(model, data)
        get_batch = replay_batches(data["new"].get_batch, data["old"].get_batch, method.replay)
        loss_fn = l2_to_init(lm_loss, model, method.l2) if method.l2 else lm_loss
        if method.ewc:
            fisher = diagonal_fisher(model, data["old"].get_batch, lm_loss, batches=FISHER_BATCHES,
                                     generator=torch.Generator().manual_seed(seed))
            loss_fn = ewc(lm_loss, model, fisher, method.ewc)
        cfg = TrainConfig(max_steps=steps, lr=LR, warmup_steps=steps // 10, weight_decay=0.0,
                          eval_interval=steps, eval_batches=1, seed=seed, progress=False)
        result = train(model, get_batch, cfg, loss_fn=loss_fn)
        after = losses(model, data)
    return {"method": method.name, "seed": seed, "steps": steps, "before": before, "after": after,
            "forgetting": after["old"] - before["old"], "gain": before["new"] - after["new"],
            "train_loss": [round(r["loss"], 4) for r in result.log],
            "seconds": round(time.perf_counter() - start, 1)}


RESULTS = "17_continual.json"


def build_results(path: Path, methods=tuple(METHODS), seeds=SEEDS, steps: int = STEPS) -> dict:
    """Run every method with every seed and write the record to ``path`` (atomically)."""
    start = time.perf_counter()
    runs = [run(m, s, steps) for m in methods for s in seeds]
    record = {"command": "python -m roadmap_lib build 17-continual", "steps": steps, "seeds": list(seeds),
              "context": CONTEXT, "batch": BATCH, "lr": LR, "runs": runs,
              "seconds": round(time.perf_counter() - start, 1), "torch": torch.__version__}
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return record


def load_results(path: Path | None = None) -> dict:
    path = Path(path) if path is not None else data_path(RESULTS)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not built: run `python -m roadmap_lib build 17-continual`")
    return json.loads(path.read_text(encoding="utf-8"))


def summary(record: dict) -> list[dict]:
    """Per method: mean and spread (min, max over seeds) of the forgetting and the gain."""
    rows = []
    for name in dict.fromkeys(r["method"] for r in record["runs"]):
        runs = [r for r in record["runs"] if r["method"] == name]
        row = {"method": name, "seeds": len(runs)}
        for key in ("forgetting", "gain"):
            vals = [r[key] for r in runs]
            row[key] = sum(vals) / len(vals)
            row[key + "_min"], row[key + "_max"] = min(vals), max(vals)
        rows.append(row)
    return rows
