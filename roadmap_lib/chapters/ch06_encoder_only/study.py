"""What pretraining is worth: fine-tuning curves of the word-level BERT against a scratch baseline.

For each number of labelled training sentences in ``SIZES`` and each head (sentence classifier,
token tagger) on the *intruder* task, two models of the same size are fine-tuned with the same
recipe: one starts from the pretrained encoder of :mod:`roadmap_lib.chapters.ch06_encoder_only.pretrain`, the other
from random weights. Both are scored on the test split, and every cell is repeated for each seed
in ``SEEDS`` (the seed draws the new weights and the batches). The sweep takes about 25 CPU-minutes,
so it runs once, ``python -m roadmap_lib build 06-finetune`` (two worker processes, each run on
one thread; the result does not depend on the number of processes), and writes ``data/06_finetune.json``; chapter 06 reads that file
and compares one of its cells with the tagger that ``06-distil`` ships (:mod:`.distil`).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch

from roadmap_lib import DATA_DIR
from roadmap_lib.attention import set_attention_backend
from roadmap_lib.chapters.ch06_encoder_only.finetune import (
    TaskData,
    finetune,
    logits_of,
    make_model,
    scores,
)
from roadmap_lib.chapters.ch06_encoder_only.pretrain import MASK, PAD, UNK, MLMData, load
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.layers import ACTIVATIONS, FUSED_ACTIVATIONS, FeedForward, LayerNorm, gelu
from roadmap_lib.measure import cpu_threads, map_runs
from roadmap_lib.metrics import token_f1
from roadmap_lib.objectives import mlm_loss
from roadmap_lib.training import evaluate

TASK = "intruder"
SIZES = (200, 700, 2000, 5600)
KINDS = ("sequence", "token")
STARTS = ("pretrained", "scratch")
SEEDS = (0, 1, 2)
RECIPE = {"steps": 600, "lr": 3e-4, "batch_size": 32, "seed": 0}
RESULTS = "06_finetune.json"


def fast_path(model: torch.nn.Module, *, attention: bool = True) -> torch.nn.Module:
    """Make ``model`` compute with PyTorch's fused kernels: every norm and activation as one kernel
    (the ``fused_ops`` of :class:`roadmap_lib.layers.BlockConfig`) and, with ``attention=True``,
    attention through ``F.scaled_dot_product_attention`` (``roadmap_lib.attention``'s "sdpa"
    backend). The same functions: outputs agree with the written-out path to float rounding
    (tests/chapters/test_ch06_encoder_only.py). Fused norms and activations draw no random numbers,
    so a training run keeps its dropout masks; "sdpa" attention draws its attention-dropout masks
    differently, so use ``attention=True`` for scoring, or for training runs that are not compared
    with a recorded one. Returns ``model``."""
    if attention:
        set_attention_backend(model, "sdpa")
    for module in model.modules():
        if isinstance(module, LayerNorm):
            module.fused = True
        elif isinstance(module, FeedForward):
            name = next((k for k, f in ACTIVATIONS.items() if f is module.act), None)
            if name is not None:
                module.act = FUSED_ACTIVATIONS[name]
    return model


def train_one(kind: str, start: str, n_train: int, *, encoder_model=None, vocab=None, recipe: dict | None = None,
              fused_ops: bool = False, stop_at: int | None = None) -> tuple[torch.nn.Module, list[float]]:
    """Fine-tune one model with the sweep's recipe; return ``(model, loss per step)``.

    ``start`` is ``"pretrained"`` (encoder copied from the zoo's BERT) or ``"scratch"`` (random
    encoder of the same configuration); ``n_train`` keeps the first ``n_train`` training sentences.
    ``fused_ops=True`` trains with fused norms and activations (:func:`fast_path` without its
    attention switch: the same run to float rounding, faster); the recorded sweep used the
    written-out ones. ``stop_at`` stops after that many steps of the same schedule.
    """
    if start not in STARTS:
        raise ValueError(f"start: expected one of {STARTS}, got {start!r}")
    if not 0 < n_train <= 5600:
        raise ValueError(f"n_train: expected 1..5600 labelled sentences, got {n_train}")
    if encoder_model is None or vocab is None:
        encoder_model, vocab, _ = load()
    recipe = {**RECIPE, **(recipe or {})}
    config = encoder_model.config
    model = make_model(kind, config, encoder_model.bert if start == "pretrained" else None, seed=recipe["seed"])
    if fused_ops:
        fast_path(model, attention=False)
    data = TaskData(vocab, TASK, "train", limit=n_train)
    losses = finetune(model, data, kind, steps=recipe["steps"], lr=recipe["lr"], batch_size=recipe["batch_size"],
                      seed=recipe["seed"], stop_at=stop_at)
    return model, losses


def run_one(kind: str, start: str, n_train: int, *, encoder_model=None, vocab=None, recipe: dict | None = None,
            split: str = "test", fused_ops: bool = False) -> tuple[dict[str, float], torch.nn.Module]:
    """Fine-tune one model (:func:`train_one`) and return ``(scores on split, model)``."""
    if encoder_model is None or vocab is None:
        encoder_model, vocab, _ = load()
    model, _ = train_one(kind, start, n_train, encoder_model=encoder_model, vocab=vocab, recipe=recipe,
                         fused_ops=fused_ops)
    return scores(model, TaskData(vocab, TASK, split), kind), model


_ENCODER = None  # the zoo model, loaded once per worker process


def _sweep_cell(cell: tuple[int, int, str, str]) -> dict:
    seed, n, kind, start = cell
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = load()[:2]
    result, _ = run_one(kind, start, n, encoder_model=_ENCODER[0], vocab=_ENCODER[1], recipe={"seed": seed})
    return {"seed": seed, "n_train": n, "kind": kind, "start": start, **result}


def build(path: Path | None = None, progress: bool = True, jobs: int = 1) -> Path:
    """Run the whole sweep (seeded, one thread per run, ``jobs`` runs at a time) and write the
    results JSON; return its path."""
    path = Path(path) if path else DATA_DIR / RESULTS
    cells = [(seed, n, kind, start) for seed in SEEDS for n in SIZES for kind in KINDS for start in STARTS]
    rows = map_runs(_sweep_cell, cells, jobs)  # refuses a bad jobs before anything runs
    record = load()[2]
    start_time = time.perf_counter()
    runs = []
    for row in rows:
        runs.append(row)
        if progress:
            print(row, f"{time.perf_counter() - start_time:.0f} s", flush=True)
    info = {"task": TASK, "split": "test", "recipe": RECIPE, "seeds": list(SEEDS), "sizes": list(SIZES), "runs": runs,
            "encoder": {"name": record["name"], "steps": record["steps"], "eval_loss": record["eval"]["loss"]},
            "seconds": round(time.perf_counter() - start_time, 1), "jobs": jobs,
            "command": "python -m roadmap_lib build 06-finetune", "torch": torch.__version__}
    atomic_write_text(path, json.dumps(info, indent=1) + "\n")
    return path


def results(path: Path | None = None) -> dict:
    path = Path(path) if path else DATA_DIR / RESULTS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not built: run `python -m roadmap_lib build 06-finetune`")
    return json.loads(path.read_text(encoding="utf-8"))


def seed_values(info: dict, kind: str, start: str, metric: str) -> dict[int, list[float]]:
    """``{n_train: [value for each seed]}`` of one line of the sweep."""
    rows = [r for r in info["runs"] if r["kind"] == kind and r["start"] == start]
    if not rows:
        raise ValueError(f"kind/start: no runs for {kind!r}/{start!r}")
    if metric not in rows[0]:
        names = sorted(k for k in rows[0] if k not in ("seed", "n_train", "kind", "start"))
        raise ValueError(f"metric: expected one of {names}, got {metric!r}")
    values: dict[int, list[float]] = {}
    for r in sorted(rows, key=lambda r: (r["n_train"], r["seed"])):
        values.setdefault(r["n_train"], []).append(r[metric])
    return values


def curve(info: dict, kind: str, start: str, metric: str) -> tuple[list[int], list[float]]:
    """``(sizes, mean over seeds)`` of one line of the sweep, e.g. ``curve(info, "token", "pretrained", "f1")``."""
    values = seed_values(info, kind, start, metric)
    return list(values), [sum(v) / len(v) for v in values.values()]


@torch.no_grad()
def surprise_scores(model, data: TaskData, sentences: torch.Tensor | None = None, batch: int = 512) -> torch.Tensor:
    """Masked-LM surprise of every word of every sentence of ``data``, aligned with
    ``data.token_labels``: a (sentences, context) tensor, ``nan`` where there is no word to score
    (``[CLS]``, ``[SEP]``, padding) or the word is ``[UNK]``.

    The same numbers as :func:`~roadmap_lib.chapters.ch06_encoder_only.pretrain.word_surprise`
    sentence by sentence, computed in batches of ``batch`` masked copies across sentences, sorted
    by length (each batch cut after its longest sentence: the padding is masked anyway). ``sentences``: a boolean
    (sentences,) mask of the sentences to score (default: all; the others stay ``nan``).
    """
    ids = data.ids
    words = (data.token_labels != -100) & (ids != UNK)
    if sentences is not None:
        if sentences.shape != (len(ids),) or sentences.dtype != torch.bool:
            raise ValueError(f"sentences: expected a boolean mask of shape ({len(ids)},), got "
                             f"{sentences.dtype} of shape {tuple(sentences.shape)}")
        words &= sentences[:, None]
    rows, cols = words.nonzero(as_tuple=True)
    length = (ids != PAD).sum(1)
    order = length[rows].argsort(stable=True)  # similar lengths together: less padding per batch
    rows, cols = rows[order], cols[order]
    out = torch.full(ids.shape, float("nan"))
    model.eval()
    for i in range(0, len(rows), batch):
        r, c = rows[i:i + batch], cols[i:i + batch]
        masked = ids[r, :int(length[r].max())].clone()
        masked[torch.arange(len(r)), c] = MASK
        h = model.bert(masked, attention_mask=masked != PAD)[torch.arange(len(r)), c]
        # BertForMaskedLM's head, applied at the masked positions only (the rest are not needed)
        logp = model.mlm_out(model.mlm_norm(gelu(model.mlm_dense(h)))).log_softmax(-1)
        out[r, c] = -logp[torch.arange(len(r)), ids[r, c]]
    return out


def flag_above(surprise: torch.Tensor, threshold: float) -> torch.Tensor:
    """Predicted token labels: 1 ("changed") where ``surprise > threshold``, else 0 (``nan``,
    i.e. no scorable word, is never flagged). Same shape as ``surprise``."""
    return (surprise > threshold).long()  # nan > t is False


def flag_top(surprise: torch.Tensor) -> torch.Tensor:
    """Predicted token labels: the most surprising scorable word of every sentence flagged (1),
    everything else 0; a sentence with no scorable word flags nothing."""
    out = torch.zeros(surprise.shape, dtype=torch.long)
    scorable = ~surprise.isnan().all(1)
    top = surprise.nan_to_num(float("-inf")).argmax(1)
    out[scorable.nonzero(as_tuple=True)[0], top[scorable]] = 1
    return out


def bootstrap_token_f1(pred: torch.Tensor, gold: torch.Tensor, n: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """A percentile bootstrap interval of :func:`roadmap_lib.metrics.token_f1` resampling the
    sentences (rows) with replacement: ``(low, high)``."""
    if pred.shape != gold.shape:
        raise ValueError(f"pred: expected the shape of gold {tuple(gold.shape)}, got {tuple(pred.shape)}")
    g = torch.Generator().manual_seed(seed)
    stats = torch.tensor([token_f1(pred[i], gold[i])
                          for i in torch.randint(0, len(gold), (n, len(gold)), generator=g)])
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=stats.dtype)
    low, high = torch.quantile(stats, q).tolist()
    return low, high


def best_threshold(surprise: torch.Tensor, gold: torch.Tensor) -> tuple[float, float]:
    """The surprise threshold that maximises the F1 of "changed" over words on (``surprise``,
    ``gold``), searched over every observed surprise value: ``(threshold, F1 there)``.
    Choose it on validation data and apply it, unchanged, to the test data."""
    if surprise.shape != gold.shape:
        raise ValueError(f"surprise: expected the shape of gold {tuple(gold.shape)}, got {tuple(surprise.shape)}")
    keep = (gold != -100) & ~surprise.isnan()
    scores_, labels = surprise[keep], gold[keep] == 1
    if not labels.any():
        raise ValueError("gold: expected at least one changed word (label 1), got none")
    order = scores_.argsort(descending=True)
    s, y = scores_[order], labels[order].float()
    tp, flagged = y.cumsum(0), torch.arange(1, len(y) + 1, dtype=torch.float)
    f1 = 2 * tp / (flagged + (gold == 1).sum())  # flagging the k most surprising words
    last = torch.ones(len(s), dtype=torch.bool)  # only cut between distinct values
    last[:-1] = s[:-1] != s[1:]
    f1[~last] = -1.0
    k = int(f1.argmax())
    threshold = float(s[k + 1] + s[k]) / 2 if k + 1 < len(s) else float(s[k]) - 1.0
    return threshold, float(f1[k])


def zero_shot_location(surprise: torch.Tensor, data: TaskData) -> float:
    """Share of the corrupted sentences of ``data`` whose most surprising word (``surprise`` from
    :func:`surprise_scores`: the masked LM, no fine-tuning) is the intruder."""
    if surprise.shape != data.token_labels.shape:
        raise ValueError(f"surprise: expected the shape of data.token_labels {tuple(data.token_labels.shape)}, "
                         f"got {tuple(surprise.shape)}")
    bad = data.labels == 0
    if not bad.any():
        raise ValueError("data: expected at least one corrupted sentence (label 0), got none")
    top = surprise[bad].nan_to_num(-1.0).argmax(1, keepdim=True)
    return (data.token_labels[bad].gather(1, top) == 1).float().mean().item()


@torch.no_grad()
def tagger_location(tagger, data: TaskData) -> float:
    """The same measure for a fine-tuned tagger: the share of corrupted sentences whose word with
    the highest p(changed) is the intruder."""
    bad = data.labels == 0
    if not bad.any():
        raise ValueError("data: expected at least one corrupted sentence (label 0), got none")
    tagger.eval()
    p = logits_of(tagger, data.ids[bad]).softmax(-1)[..., 1]
    p[data.token_labels[bad] == -100] = -1.0  # only words can be picked
    return (data.token_labels[bad].gather(1, p.argmax(1, keepdim=True)) == 1).float().mean().item()



def encoder_mlm_loss(mlm_model, vocab, record: dict, encoder_state: dict | None = None) -> float:
    """Held-out masked-LM loss (nats) of ``mlm_model``'s MLM head reading the encoder weights
    ``encoder_state`` (a fine-tuned classifier's ``model.bert.state_dict()``; ``None`` keeps the
    model's own), on the batches and masks of the checkpoint's recorded evaluation (``record``).

    How much of what pretraining taught survives fine-tuning: the head is the pretrained one, so
    any rise in loss comes from the encoder having moved.
    """
    model = copy.deepcopy(mlm_model)
    if encoder_state is not None:
        model.bert.load_state_dict(encoder_state)
    model.eval()
    with cpu_threads(1):
        return evaluate(model, MLMData(vocab).get_batch, mlm_loss, batches=record["eval"]["batches"],
                        seed=record["eval"]["seed"])


__all__ = [
    "KINDS",
    "RECIPE",
    "SEEDS",
    "SIZES",
    "STARTS",
    "TASK",
    "best_threshold",
    "bootstrap_token_f1",
    "build",
    "curve",
    "encoder_mlm_loss",
    "fast_path",
    "flag_above",
    "flag_top",
    "results",
    "run_one",
    "seed_values",
    "surprise_scores",
    "tagger_location",
    "train_one",
    "zero_shot_location",
]
