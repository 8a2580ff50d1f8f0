"""Pretraining objectives at equal compute: causal LM, masked LM, prefix LM and span corruption.

One model body for all four (a small pre-norm transformer whose attention is set by a mask, with a
tied output head), trained on the same word-level Jargon File sentences, with the same batch of
sentences per step, the same padded length ``SEQ`` and the same number of steps. What differs is only
what the objective shows the model and what it asks it to predict:

==================  =======================================  ==============================  ===================
objective           input row                                attention                       predicted
==================  =======================================  ==============================  ===================
causal LM           ``[CLS] w1 .. wn [SEP]``                 causal                          every next word
masked LM           the same, 15 % of the words corrupted    bidirectional                   the corrupted words
prefix LM           ``[CLS] w1 .. wn [SEP]``, split at P     bidirectional on the prefix,    the words after P
                                                             causal after it
span corruption     ``[CLS] input-with-sentinels [SEP]``     prefix LM (the corrupted input  the sentinels and
                    followed by ``<0> hidden words ..``      is the prefix)                  the hidden words
==================  =======================================  ==============================  ===================

Span corruption is T5's objective run in a decoder-only body (the way UL2 trains its decoder-only
models): the corrupted sentence is the prefix, the targets follow it. "Equal compute" means equal
training FLOPs: every objective runs the same ``(batch, SEQ)`` rectangle through the same body and
the same head (logits at every position, the loss only where there is a target), so the matrix
FLOPs per step are identical, as :func:`step_flops` measures with ``FlopCounterMode``. The objectives
differ in how many real tokens a row holds (span corruption's sentinels make it longer) and, much
more, in how many targets feed the loss (:func:`objective_stats`).

Every pretrained body is then judged by the same two downstream measurements on the shipped
*intruder* task tagged word by word (in half of the Jargon File sentences one word was replaced by
another; which one?): a linear probe (logistic regression on the frozen hidden state of each word)
and a full fine-tune (the body plus a linear head at every position, one recipe for all), both
scored by the ROC-AUC of the intruder words on the validation split. A body with random weights is
the control. (Chapter 06 found sentence-level versions of these tasks near chance for a much longer
pretrained encoder; word-level intruder tagging is where pretraining shows.)
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from roadmap_lib.data import load_task, load_text
from roadmap_lib.layers import BlockConfig, LayerNorm, TransformerBlock
from roadmap_lib.measure import cpu_threads
from roadmap_lib.objectives import mlm_mask, prefix_lm_mask, span_corrupt
from roadmap_lib.tasks import corpus_sentences
from roadmap_lib.training import TrainConfig, train
from roadmap_lib.zoo import load_word_bert

OBJECTIVES = ("causal LM", "masked LM", "prefix LM", "span corruption")
CONTROL = "random init"
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
N_SENTINELS = 8
SEQ = 36  # a 30-word sentence with its span-corruption sentinels fits (checked in make_batch)
MAX_WORDS = 30
TASK = "intruder"


@dataclass
class BodyConfig:
    vocab_size: int
    context_length: int = SEQ
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int | None = None  # None: 4 * d_model (the fields roadmap_lib.scaling.gpt_matmul_flops reads)
    bias: bool = True


class Body(nn.Module):
    """Token + position embeddings, pre-norm blocks whose attention is given by ``mask``, final
    LayerNorm, output head tied to the token embedding. The same module for every objective."""

    def __init__(self, config: BodyConfig) -> None:
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.d_model)
        self.wpe = nn.Embedding(c.context_length, c.d_model)
        block = BlockConfig(d_model=c.d_model, n_heads=c.n_heads, d_ff=c.d_ff, activation="gelu_tanh",
                            prenorm=True, causal=False)
        self.blocks = nn.ModuleList(TransformerBlock(block) for _ in range(c.n_layers))
        self.ln_f = LayerNorm(c.d_model)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def hidden(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids (batch, L), mask (batch, 1, L, L) boolean -> (batch, L, d_model)."""
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x, attn_mask=mask)
        return self.ln_f(x)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits (batch, L, vocab) at every position (the head is tied to ``wte``)."""
        return self.hidden(ids, mask) @ self.wte.weight.T


# ---- data -----------------------------------------------------------------------------------

def load_vocab():
    """The zoo word BERT's vocabulary (chapter 06): ids 0-4 special, then 3,000 words."""
    return load_word_bert()[1]


def vocab_size(vocab) -> int:
    return len(vocab) + N_SENTINELS  # the sentinels <0> .. <7> come after the words


def heldout_sentences() -> set[str]:
    """Original text of the task's validation and test sentences (the replaced word put back, its
    punctuation kept): never pretrained on."""
    out = set()
    for split in ("val", "test"):
        for row in load_task(TASK, split):
            words = row["text"].split()
            k = int(row["position"])
            if k >= 0:
                lead, _, trail = re.fullmatch(r"([^A-Za-z0-9]*)(.*?)([^A-Za-z0-9]*)", words[k]).groups()
                words[k] = lead + row["original"] + trail
            out.add(" ".join(words))
    return out


def pretraining_docs(vocab) -> list[list[int]]:
    """Word ids of the Jargon File's prose sentences (4 to 30 words) minus the held-out ones."""
    held = heldout_sentences()
    return [vocab.encode(s) for s in corpus_sentences(load_text(), min_words=4, max_words=MAX_WORDS)
            if s not in held]


def padded(rows: list[list[int]], seq: int = SEQ) -> torch.Tensor:
    if max(len(r) for r in rows) > seq:
        raise ValueError(f"rows: expected at most seq={seq} tokens, got {max(len(r) for r in rows)}")
    return torch.tensor([r + [PAD] * (seq - len(r)) for r in rows], dtype=torch.long)


def attention_mask(ids: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
    """The prefix-LM structure (prefix 0: causal, prefix = row length: bidirectional) restricted to
    real keys; every query keeps key 0 (``[CLS]``), so no softmax row is empty."""
    return prefix_lm_mask(prefix, ids.shape[1]) & (ids != PAD)[:, None, None, :]


def make_batch(objective: str, docs: list[list[int]], n_words: int, generator: torch.Generator):
    """``((ids, mask), targets)`` for one objective: ids and targets (batch, SEQ), mask
    (batch, 1, SEQ, SEQ); targets are -100 where nothing is predicted."""
    sentinels = list(range(n_words, n_words + N_SENTINELS))
    rows, prefixes, starts = [], [], []
    for d in docs:
        if objective in ("causal LM", "masked LM"):
            rows.append([CLS, *d, SEP])
            prefixes.append(0 if objective == "causal LM" else SEQ)
            starts.append(0)
        elif objective == "prefix LM":
            p = int(torch.randint(2, len(d) + 2, (1,), generator=generator))  # [CLS] + at least one word
            rows.append([CLS, *d, SEP])
            prefixes.append(p)
            starts.append(p - 1)
        elif objective == "span corruption":
            inp, tgt = span_corrupt(d, sentinel_ids=sentinels, generator=generator)
            rows.append([CLS, *inp, SEP, *tgt])
            prefixes.append(len(inp) + 2)
            starts.append(len(inp) + 1)
        else:
            raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    ids = padded(rows)
    prefix = torch.tensor(prefixes)
    if objective == "masked LM":
        ids, targets = mlm_mask(ids, vocab_size=n_words, mask_id=MASK, special_ids=(PAD, UNK, CLS, SEP, MASK),
                                generator=generator)
    else:
        targets = torch.full_like(ids, -100)
        for r, (row, s) in enumerate(zip(rows, starts)):
            targets[r, s:len(row) - 1] = torch.tensor(row[s + 1:])
    return (ids, attention_mask(ids, prefix)), targets


def token_names(ids, vocab) -> list[str]:
    """Readable tokens of one row (padding dropped; sentinels written ``<0>``, ``<1>``, ...)."""
    n = len(vocab)
    return [f"<{i - n}>" if i >= n else vocab.id_to_token(i) for i in ids.tolist() if i != PAD]


def example(objective: str, doc: list[int], vocab, seed: int = 0) -> dict:
    """One sentence as ``objective`` presents it: ``{"input": tokens, "predict": [(position, token)],
    "mask": (L, L) bool}`` over the row's real tokens."""
    (ids, mask), targets = make_batch(objective, [doc], len(vocab), torch.Generator().manual_seed(seed))
    L = int((ids[0] != PAD).sum())
    names = token_names(ids[0], vocab)
    predict = [(t, token_names(targets[0, t:t + 1], vocab)[0]) for t in (targets[0] != -100).nonzero()[:, 0].tolist()]
    return {"input": names, "predict": predict, "mask": mask[0, 0, :L, :L]}


def body_loss(model: Body, inputs, targets: torch.Tensor) -> torch.Tensor:
    logits = model(*inputs)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)


# ---- pretraining at equal compute --------------------------------------------------------------

PRETRAIN = {"steps": 300, "batch_size": 32, "lr": 2e-3, "warmup": 40}


def pretrain(objective: str, seed: int, vocab, docs, *, steps: int | None = None) -> tuple[Body, dict]:
    """A fresh body (drawn from ``seed``) pretrained with ``objective``; returns it and a log row."""
    r = PRETRAIN
    steps = r["steps"] if steps is None else steps
    torch.manual_seed(seed)
    model = Body(BodyConfig(vocab_size=vocab_size(vocab)))
    n_val = len(docs) // 20
    split_docs = {"val": docs[:n_val], "train": docs[n_val:]}

    def get_batch(split, g):
        pool = split_docs[split]
        idx = torch.randint(0, len(pool), (r["batch_size"],), generator=g).tolist()
        return make_batch(objective, [pool[i] for i in idx], len(vocab), g)

    cfg = TrainConfig(max_steps=steps, lr=r["lr"], warmup_steps=min(r["warmup"], steps - 1), weight_decay=0.01,
                      grad_clip=1.0, eval_interval=steps, eval_batches=4, seed=seed, progress=False)
    with cpu_threads(1):
        start = time.process_time()
        result = train(model, get_batch, cfg, loss_fn=body_loss)
        seconds = time.process_time() - start
    return model.eval(), {"final_loss": result.log[-1]["loss"], "val_loss": result.log[-1]["val_loss"],
                          "seconds": seconds}


def step_flops(objective: str, vocab, docs, batch_size: int = PRETRAIN["batch_size"]) -> int:
    """Matrix FLOPs of one training step (forward + backward), counted by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    model = Body(BodyConfig(vocab_size=vocab_size(vocab)))
    inputs, targets = make_batch(objective, docs[:batch_size], len(vocab), torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as fc:
        body_loss(model, inputs, targets).backward()
    return fc.get_total_flops()


def objective_stats(objective: str, vocab, docs, batches: int = 20) -> dict:
    """Mean real (non-pad) tokens and predicted targets per row, over ``batches`` seeded batches."""
    g = torch.Generator().manual_seed(0)
    real = tgt = rows = 0
    for b in range(batches):
        (ids, _), targets = make_batch(objective, docs[b * 32:(b + 1) * 32], len(vocab), g)
        real += int((ids != PAD).sum())
        tgt += int((targets != -100).sum())
        rows += ids.shape[0]
    return {"tokens_per_row": real / rows, "targets_per_row": tgt / rows}


# ---- the downstream judge ----------------------------------------------------------------------

FINETUNE = {"steps": 200, "batch_size": 32, "lr": 1e-3, "n_train": 5600, "n_probe": 2000, "n_val": 700}


def task_data(vocab, split: str, limit: int | None = None):
    """``(ids, labels)``, both ``(n, SEQ)``: ``[CLS] words [SEP]`` padded; label 1 at the intruder
    word, 0 at the other words, -100 at specials and padding."""
    rows = load_task(TASK, split)[:limit]
    encoded = [vocab.encode(r["text"]) for r in rows]
    if max(len(e) for e in encoded) > MAX_WORDS:
        raise ValueError(f"split {split!r}: expected at most {MAX_WORDS} words a sentence")
    ids = padded([[CLS, *e, SEP] for e in encoded])
    labels = torch.full_like(ids, -100)
    for k, (r, e) in enumerate(zip(rows, encoded)):
        labels[k, 1:len(e) + 1] = 0
        if int(r["position"]) >= 0:
            labels[k, int(r["position"]) + 1] = 1
    return ids, labels


def feature_mask(objective: str, ids: torch.Tensor) -> torch.Tensor:
    """How a pretrained body reads a sentence downstream: causally if it was pretrained causally,
    otherwise bidirectionally (the prefix LM with the whole sentence as its prefix, span corruption's
    corrupted-input side, masked LM as it was trained)."""
    prefix = torch.full((ids.shape[0],), 0 if objective == "causal LM" else ids.shape[1])
    return attention_mask(ids, prefix)


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve of the intruder class (scikit-learn's ``roc_auc_score``): the chance
    that a random intruder word scores above a random original word; 0.5 is chance."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


@torch.no_grad()
def probe_auc(model: Body, objective: str, probe_data, val_data) -> float:
    """A linear probe: logistic regression (scikit-learn, balanced class weights) on the frozen
    hidden state of every word of the probe sentences; ROC-AUC over the validation words."""
    from sklearn.linear_model import LogisticRegression

    model.eval()
    feats = []
    for ids, labels in (probe_data, val_data):
        h = model.hidden(ids, feature_mask(objective, ids))
        keep = labels != -100
        feats.append((h[keep].numpy(), labels[keep].numpy()))
    (xtr, ytr), (xva, yva) = feats
    clf = LogisticRegression(max_iter=500, class_weight="balanced").fit(xtr, ytr)
    return roc_auc(clf.decision_function(xva), yva)


class Tagger(nn.Module):
    """The body and a fresh linear head at every position: (batch, L) -> logits (batch, L, 2)."""

    def __init__(self, body: Body, objective: str) -> None:
        super().__init__()
        self.body, self.objective = body, objective
        self.head = nn.Linear(body.config.d_model, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.body.hidden(ids, feature_mask(self.objective, ids)))


def finetune_auc(model: Body, objective: str, seed: int, train_data, val_data) -> float:
    """Fine-tune a copy of the whole body with a fresh token head (one recipe for all); ROC-AUC."""
    import copy

    r = FINETUNE
    torch.manual_seed(seed)
    tagger = Tagger(copy.deepcopy(model), objective)
    ids, labels = train_data

    def get_batch(split, g):
        idx = torch.randint(0, len(ids), (r["batch_size"],), generator=g)
        return ids[idx], labels[idx]

    def loss_fn(m, x, y):
        return F.cross_entropy(m(x).flatten(0, 1), y.flatten(), ignore_index=-100)

    cfg = TrainConfig(max_steps=r["steps"], lr=r["lr"], warmup_steps=r["steps"] // 10, weight_decay=0.01,
                      eval_interval=r["steps"], eval_batches=1, seed=seed, progress=False)
    with cpu_threads(1):
        train(tagger, get_batch, cfg, loss_fn=loss_fn)
        tagger.eval()
        with torch.no_grad():
            logits = tagger(val_data[0])
    keep = val_data[1] != -100
    return roc_auc((logits[..., 1] - logits[..., 0])[keep].numpy(), val_data[1][keep].numpy())


def downstream_data(vocab):
    """``(train, probe, val)`` task tensors with the recipe's sizes."""
    r = FINETUNE
    train_data = task_data(vocab, "train", r["n_train"])
    probe_data = (train_data[0][: r["n_probe"]], train_data[1][: r["n_probe"]])
    return train_data, probe_data, task_data(vocab, "val", r["n_val"])


def run_cell(objective: str, seed: int, vocab=None, docs=None, data=None, *, finetune: bool = True) -> dict:
    """Pretrain one body (or draw a random one for the control), then probe and fine-tune it."""
    start = time.process_time()
    vocab = load_vocab() if vocab is None else vocab
    docs = pretraining_docs(vocab) if docs is None else docs
    train_data, probe_data, val_data = data or downstream_data(vocab)
    if objective == CONTROL:
        torch.manual_seed(seed)
        model, row = Body(BodyConfig(vocab_size=vocab_size(vocab))).eval(), {"seconds": 0.0}
    else:
        model, row = pretrain(objective, seed, vocab, docs)
    with cpu_threads(1):
        row = {"objective": objective, "seed": seed, **row, "probe": probe_auc(model, objective, probe_data, val_data)}
    if finetune:
        row["finetune"] = finetune_auc(model, objective, seed, train_data, val_data)
    row["cell_seconds"] = time.process_time() - start  # CPU seconds of the whole cell
    return row


SEEDS = (0, 1, 2)
RESULTS = "10_objectives.json"


def build(path, rows: list[dict] | None = None) -> dict:
    """Every objective and the control with every seed (about 5 CPU minutes on one thread)."""
    import json
    from pathlib import Path

    from roadmap_lib.fileio import atomic_write_text

    start = time.perf_counter()
    vocab = load_vocab()
    docs = pretraining_docs(vocab)
    data = downstream_data(vocab)
    external = rows
    if rows is None:  # every cell seeds itself, so cells run elsewhere (in parallel) give the same rows
        rows = [run_cell(obj, s, vocab, docs, data) for s in SEEDS for obj in (*OBJECTIVES, CONTROL)]
    info = {"task": TASK, "split": "val", "metric": "ROC-AUC of the intruder words", "body": asdict(BodyConfig(vocab_size(vocab))),
            "pretrain": PRETRAIN, "finetune": FINETUNE, "seeds": list(SEEDS), "n_docs": len(docs),
            "flops_per_step": {o: step_flops(o, vocab, docs) for o in OBJECTIVES},
            "stats": {o: objective_stats(o, vocab, docs) for o in OBJECTIVES}, "runs": rows,
            "seconds": time.perf_counter() - start if external is None else sum(r["cell_seconds"] for r in rows),
            "command": "python -m roadmap_lib build 10-objectives",
            "torch": torch.__version__}
    atomic_write_text(Path(path), json.dumps(info, indent=1))
    return info


def summarise(rows: list[dict]) -> dict[str, dict]:
    """``{objective: {metric: mean, metric_min, metric_max}}`` for the probe and the fine-tune."""
    out = {}
    for obj in dict.fromkeys(r["objective"] for r in rows):
        rs = [r for r in rows if r["objective"] == obj]
        out[obj] = {}
        for metric in ("probe", "finetune"):
            v = [r[metric] for r in rs]
            out[obj] |= {metric: sum(v) / len(v), f"{metric}_min": min(v), f"{metric}_max": max(v)}
    return out
