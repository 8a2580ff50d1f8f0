"""Chapter 22's two small systems, each against a simple strong baseline.

1. **Sentence classification** on the shipped *acceptability* task (label 1: a Jargon File
   sentence as written; label 0: the same sentence with two words swapped). Baselines: TF-IDF
   features + logistic regression (scikit-learn), on word unigrams and on unigrams + bigrams. The
   model: the zoo's word-level BERT (``bert-word-jargon``, pretrained by chapter 06) fine-tuned
   with a fresh classifier on ``[CLS]``.
2. **Sequence labelling** on the shipped *intruder* task read as BIO tags: the one replaced word
   is a span ``B-INTRUDER``, every other word ``O``; scored with span-level F1
   (:mod:`roadmap_lib.tagging`). Baseline: a frequency dictionary (flag the sentence's rarest word,
   counted over the training sentences, when it is rarer than a threshold picked on the training
   split). The model: the same BERT fine-tuned as a token classifier.

Everything runs on one thread; words are whitespace words normalised as the encoder's vocabulary
normalises them (lower case, surrounding punctuation stripped).
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from roadmap_lib.data import load_task
from roadmap_lib.measure import cpu_threads
from roadmap_lib.models.bert import (
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from roadmap_lib.tagging import spans_to_bio
from roadmap_lib.tokenizers.word import WordTokenizer, normalize_word
from roadmap_lib.training import TrainConfig, train
from roadmap_lib.zoo import load_word_bert

ENCODER = "bert-word-jargon"
CONTEXT = 32  # the encoder's context: [CLS] + at most 30 words + [SEP]
PAD, CLS, SEP = 0, 2, 3
TAGS = ("O", "B-INTRUDER")  # label id -> tag; intruder spans are one word, so I-INTRUDER never occurs
RECIPE = {"steps": 300, "lr": 1e-3, "batch_size": 32}


def load_encoder() -> tuple[BertForMaskedLM, WordTokenizer]:
    """The zoo's pretrained word BERT and its vocabulary (ids 0..4 are the special tokens)."""
    model, tok, _ = load_word_bert(ENCODER)
    return model, tok


class Split:
    """One split of a task: ``text`` (list), sentence ``labels`` (n,), and for *intruder* the
    replaced word's index ``position`` (n,), -1 for an original sentence."""

    def __init__(self, task: str, split: str, limit: int | None = None):
        if task not in ("acceptability", "intruder"):
            raise ValueError(f"task: expected 'acceptability' or 'intruder', got {task!r}")
        rows = load_task(task, split)[:limit]
        self.task, self.text = task, [r["text"] for r in rows]
        self.labels = torch.tensor([int(r["label"]) for r in rows])
        self.position = torch.tensor([int(r.get("position", -1)) for r in rows])

    def __len__(self) -> int:
        return len(self.text)

    def gold_tags(self) -> list[list[str]]:
        """BIO tags per sentence: ``B-INTRUDER`` at the replaced word, ``O`` elsewhere."""
        return [spans_to_bio([("INTRUDER", p, p + 1)] if p >= 0 else [], len(t.split()))
                for t, p in zip(self.text, self.position.tolist())]


def encode(vocab: WordTokenizer, texts: list[str]) -> torch.Tensor:
    """``(n, CONTEXT)`` ids ``[CLS] w_1 .. w_k [SEP]`` padded with ``[PAD]``; word ``i`` is token ``i + 1``."""
    ids = torch.full((len(texts), CONTEXT), PAD, dtype=torch.long)
    for r, text in enumerate(texts):
        words = vocab.encode(text)
        if len(words) > CONTEXT - 2:
            raise ValueError(f"texts[{r}]: expected at most {CONTEXT - 2} words, got {len(words)}")
        ids[r, : len(words) + 2] = torch.tensor([CLS, *words, SEP])
    return ids


def token_targets(data: Split) -> torch.Tensor:
    """``(n, CONTEXT)`` label ids for the tagger: 1 at the intruder, 0 at other words, -100 elsewhere."""
    y = torch.full((len(data), CONTEXT), -100, dtype=torch.long)
    for r, (text, p) in enumerate(zip(data.text, data.position.tolist())):
        y[r, 1 : len(text.split()) + 1] = 0
        if p >= 0:
            y[r, p + 1] = 1
    return y


# ---- baselines -------------------------------------------------------------------------------------


def tfidf_baseline(train_data: Split, test_data: Split, ngrams: int = 1, C: float = 1.0) -> torch.Tensor:
    """Predicted labels (n_test,) of TF-IDF (word 1..``ngrams``-grams, the encoder's word
    normalisation) + logistic regression fitted on ``train_data``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    if ngrams not in (1, 2, 3):
        raise ValueError(f"ngrams: expected 1, 2 or 3, got {ngrams!r}")
    vec = TfidfVectorizer(ngram_range=(1, ngrams), tokenizer=lambda t: [normalize_word(w) for w in t.split()],
                          lowercase=False, token_pattern=None, sublinear_tf=True)
    clf = LogisticRegression(C=C, max_iter=2000)
    clf.fit(vec.fit_transform(train_data.text), train_data.labels.numpy())
    return torch.as_tensor(clf.predict(vec.transform(test_data.text)))


class RarestWordTagger:
    """Flag the rarest word of a sentence as the intruder when its training count is <= ``threshold``.

    Counts are over the training sentences' normalised words; ``fit`` picks the threshold with
    the best span F1 on the training split itself (a dictionary baseline with one tuned knob)."""

    def __init__(self, train_data: Split):
        self.counts = Counter(normalize_word(w) for t in train_data.text for w in t.split())
        self.threshold = 0

    def tag(self, texts: list[str]) -> list[list[str]]:
        out = []
        for text in texts:
            c = [self.counts[normalize_word(w)] for w in text.split()]
            i = min(range(len(c)), key=c.__getitem__)
            out.append(spans_to_bio([("INTRUDER", i, i + 1)] if c[i] <= self.threshold else [], len(c)))
        return out

    def fit(self, train_data: Split, candidates=(0, 1, 2, 3, 5, 8, 13, 21, 34, 55)) -> RarestWordTagger:
        from roadmap_lib.tagging import span_scores

        gold = train_data.gold_tags()
        best = None
        for t in candidates:
            self.threshold = t
            f1 = span_scores(self.tag(train_data.text), gold).f1
            if best is None or f1 > best[0]:
                best = (f1, t)
        self.threshold = best[1]
        return self


# ---- the fine-tuned encoder ---------------------------------------------------------------------


def make_model(encoder: BertForMaskedLM, kind: str, seed: int) -> nn.Module:
    """A classifier (``kind="sequence"``) or tagger (``"token"``) with the pretrained encoder's weights
    and a fresh head drawn from ``seed``."""
    cls = {"sequence": BertForSequenceClassification, "token": BertForTokenClassification}.get(kind)
    if cls is None:
        raise ValueError(f"kind: expected 'sequence' or 'token', got {kind!r}")
    torch.manual_seed(seed)
    model = cls(encoder.config)
    model.bert.load_state_dict(encoder.bert.state_dict())
    return model


def fine_tune(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor, *, seed: int, steps: int = RECIPE["steps"],
              lr: float = RECIPE["lr"], batch_size: int = RECIPE["batch_size"], pos_weight: float = 5.0) -> list[float]:
    """AdamW with warmup + cosine, one thread; the loss per step. ``targets`` (n,) trains a sentence
    classifier, (n, CONTEXT) a tagger (its rare intruder class weighted by ``pos_weight``)."""
    weight = torch.tensor([1.0, pos_weight]) if targets.dim() == 2 else None

    def get_batch(split, generator):
        rows = torch.randint(0, len(ids), (batch_size,), generator=generator)
        return ids[rows], targets[rows]

    def loss_fn(m, x, y):
        logits = m(x, attention_mask=x != PAD)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), weight=weight, ignore_index=-100)

    return train_steps(model, get_batch, loss_fn, seed=seed, steps=steps, lr=lr)


def train_steps(model: nn.Module, get_batch, loss_fn, *, seed: int, steps: int, lr: float) -> list[float]:
    """The chapter's fine-tuning recipe: AdamW, 10 % warmup then cosine, weight decay 0.01, one
    thread; returns the loss per step."""
    cfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=steps // 10, weight_decay=0.01, eval_interval=steps,
                      eval_batches=1, seed=seed, progress=False)
    with cpu_threads(1):
        log = train(model, get_batch, cfg, loss_fn=loss_fn).log
    return [row["loss"] for row in log]


@torch.no_grad()
def predict(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Arg-max label ids: (n,) for a classifier, (n, CONTEXT) for a tagger."""
    model.eval()
    with cpu_threads(1):
        return torch.cat([model(x, attention_mask=x != PAD).argmax(-1) for x in ids.split(256)])


def tags_from_ids(pred: torch.Tensor, texts: list[str]) -> list[list[str]]:
    """BIO tags per sentence from a tagger's (n, CONTEXT) label ids (word ``i`` is token ``i + 1``)."""
    return [[TAGS[k] for k in row[1 : len(t.split()) + 1].tolist()] for row, t in zip(pred, texts)]


__all__ = ["CONTEXT", "ENCODER", "RECIPE", "TAGS", "RarestWordTagger", "Split", "encode", "fine_tune",
           "load_encoder", "make_model", "predict", "tags_from_ids", "tfidf_baseline", "token_targets", "train_steps"]


def run_study(seeds=(0, 1, 2), *, steps: int = RECIPE["steps"], n_train: int | None = None,
              progress: bool = True) -> dict:
    """Fine-tune a sentence classifier and a tagger on *intruder* with each seed; score both on the
    test split. Returns per-seed scores and every seed's test predictions (label per sentence; the
    flagged word indices per sentence) so that the chapter can bootstrap and show examples."""
    from tqdm.auto import tqdm

    from roadmap_lib.metrics import accuracy
    from roadmap_lib.tagging import span_scores

    encoder, vocab = load_encoder()
    tr, te = Split("intruder", "train", n_train), Split("intruder", "test")
    ids_tr, ids_te, y_tok = encode(vocab, tr.text), encode(vocab, te.text), token_targets(tr)
    gold_tags = te.gold_tags()
    out = {"task": "intruder", "split": "test", "n_train": len(tr), "n_test": len(te),
           "recipe": {**RECIPE, "steps": steps}, "seeds": list(seeds), "classifier": {}, "tagger": {}}
    for seed in tqdm(seeds, desc="fine-tune", disable=not progress):
        clf = make_model(encoder, "sequence", seed)
        fine_tune(clf, ids_tr, tr.labels, seed=seed, steps=steps)
        pred = predict(clf, ids_te)
        out["classifier"][str(seed)] = {"accuracy": accuracy(pred, te.labels), "pred": pred.tolist()}
        tagger = make_model(encoder, "token", seed)
        fine_tune(tagger, ids_tr, y_tok, seed=seed, steps=steps)
        tags = tags_from_ids(predict(tagger, ids_te), te.text)
        s = span_scores(tags, gold_tags)
        out["tagger"][str(seed)] = {"precision": s.precision, "recall": s.recall, "f1": s.f1,
                                    "flagged": [[i for i, t in enumerate(row) if t != "O"] for row in tags]}
    return out


def flagged_to_tags(flagged: list[list[int]], texts: list[str]) -> list[list[str]]:
    """BIO tags per sentence from the flagged word indices stored in the results file."""
    return [spans_to_bio([("INTRUDER", i, i + 1) for i in f], len(t.split())) for f, t in zip(flagged, texts)]


__all__ += ["flagged_to_tags", "run_study"]


def labels_from_flagged(flagged: list[list[int]]) -> torch.Tensor:
    """Sentence labels (n,) read off a tagger: 0 (corrupted) when it flags any word, else 1."""
    return torch.tensor([0 if f else 1 for f in flagged])


__all__ += ["labels_from_flagged"]
