"""A word-level BERT pretrained with masked LM on the Jargon File, for chapter 06.

Tokens are whitespace words, lower-cased with their surrounding punctuation stripped, so token
``i + 1`` of an encoded sentence is word ``i`` (position 0 is ``[CLS]``): the acceptability task's
swap positions become token labels directly. The vocabulary is the most frequent words of the
pretraining sentences; the rest map to ``[UNK]``.

Pretraining sentences are the Jargon File's prose sentences (:func:`roadmap_lib.tasks.corpus_sentences`)
*minus* the originals of the acceptability task's validation and test sentences, so fine-tuned
models are never scored on sentences the encoder has read.

``python -m roadmap_lib build bert-word-jargon`` trains the encoder (seeded, one thread) and writes
``data/zoo/bert-word-jargon.safetensors`` and ``.json`` (config, vocabulary, training log, recorded
eval MLM loss); ``verify`` recomputes that loss; :func:`load` gives the model back.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from roadmap_lib import DATA_DIR
from roadmap_lib.checkpoint import save_model
from roadmap_lib.data import load_task, load_text
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads
from roadmap_lib.models.bert import BertConfig, BertForMaskedLM
from roadmap_lib.objectives import mlm_loss, mlm_mask
from roadmap_lib.tasks import corpus_sentences
from roadmap_lib.tokenizers.base import check_ids
from roadmap_lib.tokenizers.word import WordTokenizer, frequent_words, normalize_word
from roadmap_lib.training import TrainConfig, evaluate, train
from roadmap_lib.zoo import load_checkpoint

NAME = "bert-word-jargon"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(5)
CONTEXT = 32  # [CLS] + at most 30 words + [SEP]
VOCAB_WORDS = 3000
SEED = 0
EVAL_BATCHES, EVAL_SEED, BATCH = 20, 1, 64
MODEL = {"context_length": CONTEXT, "d_model": 128, "n_layers": 2, "n_heads": 4, "d_ff": 256, "dropout": 0.1}
TRAIN = {"max_steps": 8000, "lr": 1e-3, "min_lr_ratio": 0.1, "warmup_steps": 100, "weight_decay": 0.01,
             "betas": (0.9, 0.98), "grad_clip": 1.0, "eval_interval": 500, "eval_batches": EVAL_BATCHES}


class WordVocab(WordTokenizer):
    """Special tokens first, then words (lower case, surrounding punctuation stripped:
    :func:`~roadmap_lib.tokenizers.word.normalize_word`); one id per whitespace word. The
    literal word ``[MASK]`` is the mask token; the other special tokens are never read from text."""

    def __init__(self, words: list[str]):
        super().__init__(words, special_tokens=SPECIALS, unk_token="[UNK]", normalize=normalize_word,
                         literal_specials=["[MASK]"])

    @classmethod
    def from_sentences(cls, sentences: list[str], size: int = VOCAB_WORDS) -> WordVocab:
        """The ``size`` most frequent words of ``sentences`` (ties alphabetical)."""
        return cls(frequent_words(sentences, size, normalize_word))

    def encode(self, text: str, context: int = CONTEXT) -> torch.Tensor:
        """``[CLS] w_1 .. w_n [SEP]`` padded with ``[PAD]`` to ``context`` ids (1-D int64).

        Raises ``ValueError`` when the sentence has more than ``context - 2`` words.
        """
        words = super().encode(text)
        if len(words) > context - 2:
            raise ValueError(f"text: expected at most {context - 2} words, got {len(words)}")
        ids = [CLS] + words + [SEP]
        return torch.tensor(ids + [PAD] * (context - len(ids)), dtype=torch.long)

    def decode(self, ids) -> list[str]:
        """The tokens of ``ids``, one per id (a list: the notebook lines them up with the masks)."""
        return [self.itos[i] for i in check_ids(ids, len(self.itos))]


def heldout_sentences() -> set[str]:
    """The original (unswapped) text of the acceptability task's validation and test sentences."""
    originals = set()
    for split in ("val", "test"):
        for row in load_task("acceptability", split):
            words = row["text"].split()
            i, j = int(row["swap_i"]), int(row["swap_j"])
            if i >= 0:
                words[i], words[j] = words[j], words[i]
            originals.add(" ".join(words))
    return originals


def pretraining_sentences() -> list[str]:
    held = heldout_sentences()
    return [s for s in corpus_sentences(load_text(), min_words=4, max_words=CONTEXT - 2) if s not in held]


class MLMData:
    """Encoded pretraining sentences (a seeded 95/5 train/val split), masked afresh each batch."""

    def __init__(self, vocab: WordVocab | None = None, batch_size: int = BATCH):
        sentences = pretraining_sentences()
        order = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(SEED)).tolist()
        sentences = [sentences[i] for i in order]
        self.vocab = vocab or WordVocab.from_sentences(sentences)
        ids = torch.stack([self.vocab.encode(s) for s in sentences])
        n_val = len(ids) // 20
        self.splits = {"train": ids[n_val:], "val": ids[:n_val]}
        self.batch_size = batch_size

    def get_batch(self, split: str, generator: torch.Generator | None = None):
        if split not in self.splits:
            raise ValueError(f"split: expected 'train' or 'val', got {split!r}")
        data = self.splits[split]
        rows = data[torch.randint(0, len(data), (self.batch_size,), generator=generator)]
        return mlm_mask(rows, vocab_size=len(self.vocab), mask_id=MASK, special_ids=(PAD, CLS, SEP),
                        generator=generator)


def zoo_dir() -> Path:
    return DATA_DIR / "zoo"


def build(out_dir: Path | None = None, progress: bool = True, max_steps: int | None = None) -> Path:
    """Pretrain from the seed and write the checkpoint and its JSON; return the JSON's path."""
    out_dir = Path(out_dir) if out_dir else zoo_dir()
    torch.manual_seed(SEED)
    data = MLMData()
    model = BertForMaskedLM(BertConfig(vocab_size=len(data.vocab), **MODEL))
    overrides = {} if max_steps is None else {"max_steps": max_steps, "warmup_steps": 0}
    cfg = TrainConfig(**{**TRAIN, **overrides}, seed=SEED, progress=progress)
    with cpu_threads(1):
        start = time.perf_counter()
        result = train(model, data.get_batch, cfg, loss_fn=mlm_loss)
        seconds = time.perf_counter() - start
        eval_loss = evaluate(model, data.get_batch, mlm_loss, batches=EVAL_BATCHES, seed=EVAL_SEED)
    info = {"name": NAME, "description": "word-level BERT (2 layers, 4 heads, 128 dims, context 32) "
                "pretrained with masked LM on Jargon File sentences",
                "model_config": model.config.to_dict(), "train_config": TRAIN, "seed": SEED,
                "vocab": data.vocab.itos, "n_sentences": {k: len(v) for k, v in data.splits.items()},
                "eval": {"split": "val", "batches": EVAL_BATCHES, "batch_size": BATCH, "seed": EVAL_SEED,
                         "loss": eval_loss},
                "train_seconds": round(seconds, 1), "steps": result.step, "log": result.log,
                "command": "python -m roadmap_lib build bert-word-jargon", "torch": torch.__version__}
    weights = out_dir / f"{NAME}.safetensors"
    save_model(model, weights, config=model.config.to_dict())
    path = out_dir / f"{NAME}.json"
    atomic_write_text(path, json.dumps(info, indent=1) + "\n")
    return path


def load(zoo: Path | None = None) -> tuple[BertForMaskedLM, WordVocab, dict]:
    """``(model, vocab, info)`` of the shipped pretrained encoder, in eval mode."""
    return load_checkpoint(NAME, lambda c: BertForMaskedLM(BertConfig(**c)), vocab_from_list=WordVocab,
                           zoo_dir=zoo)


def verify(zoo: Path | None = None) -> tuple[float, float]:
    """``(recomputed, recorded)`` eval MLM loss of the shipped checkpoint."""
    model, vocab, record = load(zoo)
    data = MLMData(vocab)
    with cpu_threads(1):
        loss = evaluate(model, data.get_batch, mlm_loss, batches=record["eval"]["batches"],
                        seed=record["eval"]["seed"])
    return loss, record["eval"]["loss"]


@torch.no_grad()
def top_predictions(model, vocab: WordVocab, text: str, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable words (and probabilities) at the first ``[MASK]`` of ``text``."""
    ids = vocab.encode(text)
    where = (ids == MASK).nonzero()
    if len(where) == 0:
        raise ValueError(f"text: expected a [MASK] word, got {text!r}")
    logits = model(ids[None], attention_mask=(ids != PAD)[None])[0, where[0, 0]]
    logits[:5] = -float("inf")  # never predict special tokens
    p, idx = logits.softmax(-1).topk(k)
    return [(vocab.itos[i], float(q)) for i, q in zip(idx.tolist(), p.tolist())]


@torch.no_grad()
def word_surprise(model, vocab: WordVocab, text: str) -> list[tuple[str, float]]:
    """``(word, -log p(word | the rest of the sentence))`` for each word of ``text``, in nats.

    Each word is masked in turn (one batch row per word) and scored by the masked-LM head; a
    word that does not fit its context gets a high surprise. ``[UNK]`` words get ``nan``.
    """
    ids = vocab.encode(text)
    n = len(text.split())
    batch = ids.repeat(n, 1)
    batch[torch.arange(n), torch.arange(n) + 1] = MASK
    logp = model(batch, attention_mask=batch != PAD).log_softmax(-1)
    words = ids[1 : n + 1]
    surprise = -logp[torch.arange(n), torch.arange(n) + 1, words]
    surprise[words == UNK] = float("nan")
    return list(zip(text.split(), surprise.tolist()))



__all__ = ["CONTEXT", "MASK", "NAME", "PAD", "MLMData", "WordVocab", "build", "heldout_sentences",
           "load", "pretraining_sentences", "top_predictions", "verify", "word_surprise"]
