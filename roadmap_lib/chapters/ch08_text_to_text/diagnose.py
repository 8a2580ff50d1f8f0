"""Why the span-corruption model learns only the word prior (chapter 08, section 3): cheap, decisive checks.

    1. can our T5 learn the task at all?   overfit ONE fixed batch of noised sentences: loss -> ~0
    2. is it our model?                    transformers' T5ForConditionalGeneration, same config, same
                                           batches, same optimiser and schedule: does IT beat the prior?
    3. how much is there to learn?         the hidden words split by frequency, and count-based
                                           baselines that see a gap's neighbours (left or right word)

The batches themselves are checked against transformers' reference recipe (the flax example's
``DataCollatorForT5MLM`` and ``T5ForConditionalGeneration._shift_right``) in
``tests/chapters/test_ch08_span_recipe.py``.

``python -m roadmap_lib build 08-span-diagnosis`` writes ``data/08_span_diagnosis.json`` (seeded,
one CPU thread; 16 minutes on a shared, loaded 2-core machine: its ``seconds`` field); ``verify``
recomputes its count-based numbers and re-runs the first steps of the overfitting run.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from roadmap_lib import DATA_DIR
from roadmap_lib.chapters.ch08_text_to_text.common import MODEL, PAD, EOS, SEED, SENTINELS, UNK, new_model
from roadmap_lib.chapters.ch08_text_to_text.pretrain import (
    EVAL_BATCHES,
    EVAL_SEED,
    NOISE_SETTINGS,
    TRAIN,
    PretrainData,
    hidden_word_loss,
    word_prior,
)
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads
from roadmap_lib.objectives import seq2seq_loss
from roadmap_lib.training import TrainConfig, train

RESULTS = "08_span_diagnosis.json"
OVERFIT = {"steps": 300, "lr": 1e-3, "log_every": 50}
SAME_BUDGET_STEPS = 600  # the chapter's recipe (TRAIN), its cosine schedule compressed to 600 steps
RANK_BUCKETS = ((0, 10), (10, 100), (100, 1000), (1000, None))  # word frequency ranks, most frequent first
BIGRAM_WEIGHT = 0.5  # interpolation weight of the bigram against the unigram (0.3 and 0.7 do no better)
BASELINE_COPIES = 5  # each validation sentence noised this many times for the count-based baselines


def noise_mask_of(ids: list[int], noisy: list[int], target: list[int]) -> list[bool]:
    """Which words of ``ids`` a span corruption ``(noisy, target)`` of them hid, read off the
    input (each sentinel stands for as many words as follow it in the target)."""
    spans: dict[int, list[int]] = {}
    current: list[int] = []
    for t in target:
        if t in SENTINELS:
            current = spans.setdefault(t, [])
        else:
            current.append(t)
    mask: list[bool] = []
    for t in noisy:
        mask += [True] * len(spans[t]) if t in SENTINELS else [False]
    if len(mask) != len(ids):
        raise ValueError(f"noisy, target: they rebuild {len(mask)} words, expected {len(ids)} (the length of ids)")
    return mask


class HFT5(nn.Module):
    """transformers' ``T5ForConditionalGeneration`` built from random weights with the chapter's
    config, called like our T5: ``model(src, tgt_in, src_padding_mask) -> logits``."""

    def __init__(self, vocab_size: int, seed: int = SEED):
        super().__init__()
        from transformers import T5Config, T5ForConditionalGeneration

        torch.manual_seed(seed)
        cfg = T5Config(vocab_size=vocab_size, d_model=MODEL["d_model"], d_kv=MODEL["d_kv"], d_ff=MODEL["d_ff"],
                       num_layers=MODEL["n_layers"], num_heads=MODEL["n_heads"],
                       relative_attention_num_buckets=MODEL["num_buckets"],
                       relative_attention_max_distance=MODEL["max_distance"], dropout_rate=MODEL["dropout"],
                       feed_forward_proj="relu", tie_word_embeddings=True, pad_token_id=PAD, eos_token_id=EOS,
                       decoder_start_token_id=PAD)
        self.hf = T5ForConditionalGeneration(cfg)

    def forward(self, src, tgt_in, src_padding_mask=None):
        mask = None if src_padding_mask is None else (~src_padding_mask).long()
        return self.hf(input_ids=src, attention_mask=mask, decoder_input_ids=tgt_in).logits


def overfit_one_batch(data: PretrainData, steps: int = OVERFIT["steps"], lr: float = OVERFIT["lr"],
                      log_every: int = OVERFIT["log_every"]) -> list[dict]:
    """Train a fresh chapter T5 (seed 0) with Adam on ONE fixed training batch (seed 0); the loss
    every ``log_every`` steps, ``[{"step", "loss"}]``, step 0 = at initialisation."""
    batch = data.get_batch("train", torch.Generator().manual_seed(SEED))
    model = new_model(len(data.vocab))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    log = []
    for step in range(steps + 1):
        loss = seq2seq_loss(model, *batch)
        if step % log_every == 0:
            log.append({"step": step, "loss": round(loss.item(), 4)})
        if step < steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return log


def same_budget(kind: str, data: PretrainData, steps: int = SAME_BUDGET_STEPS) -> dict:
    """``kind`` = "ours" (our T5) or "transformers" (:class:`HFT5`), trained on the same span
    batches with the chapter's recipe shortened to ``steps``; the hidden-word loss on the
    validation sentences after training (:func:`hidden_word_loss`) and the train/val loss log."""
    if kind not in ("ours", "transformers"):
        raise ValueError(f"kind: expected 'ours' or 'transformers', got {kind!r}")
    model = new_model(len(data.vocab)) if kind == "ours" else HFT5(len(data.vocab))
    cfg = TrainConfig(**{**TRAIN, "max_steps": steps, "warmup_steps": min(TRAIN["warmup_steps"], steps)},
                      seed=SEED, progress=False)
    result = train(model, data.get_batch, cfg, loss_fn=seq2seq_loss)
    log = [{"step": r["step"], "loss": round(r["loss"], 4), "val_loss": round(r["val_loss"], 4)}
           for r in result.log if "val_loss" in r]
    return {"hidden": hidden_word_loss(model, data, EVAL_BATCHES, EVAL_SEED), "log": log}


def hidden_words(data: PretrainData, copies: int = BASELINE_COPIES, seed: int = EVAL_SEED) -> list[tuple]:
    """``(word, left neighbour, right neighbour)`` for every hidden non-``<unk>`` word of the
    validation sentences, each noised ``copies`` times with the span settings (seeded); a
    neighbour is ``None`` when it is hidden too or there is none."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for ids in data.splits["val"] * copies:
        noisy, target = data.noise(ids, generator=g, **NOISE_SETTINGS["span"])
        mask = noise_mask_of(ids, noisy, target)
        for i, w in enumerate(ids):
            if mask[i] and w != UNK:
                left = ids[i - 1] if i > 0 and not mask[i - 1] else None
                right = ids[i + 1] if i + 1 < len(ids) and not mask[i + 1] else None
                out.append((w, left, right))
    return out


def context_baselines(data: PretrainData, weight: float = BIGRAM_WEIGHT, copies: int = BASELINE_COPIES) -> dict:
    """Count-based losses (nats per hidden word) on :func:`hidden_words`, all from the training
    sentences: ``unigram`` (word frequencies, add-0.01 smoothing, ``<unk>`` excluded), and
    ``left_bigram`` / ``right_bigram``: p(word | visible neighbour) interpolated with the unigram
    (``weight`` on the bigram; the unigram alone when that neighbour is hidden). ``by_rank``: for
    each frequency-rank bucket, its share of the hidden words and their unigram loss."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight: expected a weight in [0, 1], got {weight!r}")
    train_ids = data.splits["train"]
    uni = Counter(t for ids in train_ids for t in ids if t != UNK)
    total, V = sum(uni.values()), len(data.vocab)
    pairs = {"left": Counter(), "right": Counter()}
    ctx = {"left": Counter(), "right": Counter()}
    for ids in train_ids:
        for a, b in zip(ids, ids[1:]):
            pairs["left"][a, b] += 1
            ctx["left"][a] += 1
            pairs["right"][b, a] += 1
            ctx["right"][b] += 1

    def p_uni(w):
        return (uni[w] + 0.01) / (total + 0.01 * V)

    def p_bi(w, c, side):
        if c is None or ctx[side][c] == 0:
            return p_uni(w)
        return weight * pairs[side][c, w] / ctx[side][c] + (1 - weight) * p_uni(w)

    items = hidden_words(data, copies)
    n = len(items)
    out = {"words": n, "unigram": -sum(math.log(p_uni(w)) for w, _, _ in items) / n,
           "left_bigram": -sum(math.log(p_bi(w, a, "left")) for w, a, _ in items) / n,
           "right_bigram": -sum(math.log(p_bi(w, b, "right")) for w, _, b in items) / n}
    rank = {w: r for r, (w, _) in enumerate(uni.most_common())}
    out["by_rank"] = []
    for lo, hi in RANK_BUCKETS:
        sel = [w for w, _, _ in items if lo <= rank.get(w, math.inf) < (hi or math.inf)]
        out["by_rank"].append({"ranks": [lo, hi], "share": len(sel) / n,
                               "unigram": -sum(math.log(p_uni(w)) for w in sel) / max(1, len(sel))})
    return out


def build(path: Path | None = None, progress: bool = True) -> Path:
    """Run the three checks (one CPU thread) and write the results JSON; return its path."""
    path = Path(path) if path else DATA_DIR / RESULTS
    start = time.perf_counter()
    with cpu_threads(1):
        data = PretrainData("span")
        info = {"prior": word_prior(data), "baselines": context_baselines(data)}
        if progress:
            print("baselines", info["baselines"], flush=True)
        info["overfit"] = {**OVERFIT, "log": overfit_one_batch(data)}
        if progress:
            print("overfit", info["overfit"]["log"], flush=True)
        info["same_budget"] = {"steps": SAME_BUDGET_STEPS}
        for kind in ("ours", "transformers"):
            info["same_budget"][kind] = same_budget(kind, PretrainData("span", data.vocab))
            if progress:
                print(kind, info["same_budget"][kind]["hidden"], flush=True)
    info.update({"seconds": round(time.perf_counter() - start, 1), "seed": SEED,
                 "command": "python -m roadmap_lib build 08-span-diagnosis", "torch": torch.__version__})
    atomic_write_text(path, json.dumps(info, indent=1) + "\n")
    return path


def results(path: Path | None = None) -> dict:
    path = Path(path) if path else DATA_DIR / RESULTS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not built: run `python -m roadmap_lib build 08-span-diagnosis`")
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = ["BASELINE_COPIES", "BIGRAM_WEIGHT", "HFT5", "OVERFIT", "RANK_BUCKETS", "RESULTS", "SAME_BUDGET_STEPS",
           "build", "context_baselines", "hidden_words", "noise_mask_of", "overfit_one_batch", "results",
           "same_budget"]
