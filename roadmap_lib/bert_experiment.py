"""A word-level BERT pretrained with masked LM on the Jargon File, for chapter 06.

Tokens are whitespace words, lower-cased with their surrounding punctuation stripped, so token
``i + 1`` of an encoded sentence is word ``i`` (position 0 is ``[CLS]``): the acceptability task's
swap positions become token labels directly. The vocabulary is the most frequent words of the
pretraining sentences; the rest map to ``[UNK]``.

Pretraining sentences are the Jargon File's prose sentences (:func:`roadmap_lib.tasks.corpus_sentences`)
*minus* the originals of the acceptability task's validation and test sentences, so fine-tuned
models are never scored on sentences the encoder has read.

``python -m roadmap_lib.bert_experiment build`` trains the encoder (seeded, one thread) and writes
``data/zoo/bert-word-jargon.safetensors`` and ``.json`` (config, vocabulary, training log, recorded
eval MLM loss); ``verify`` recomputes that loss; :func:`load` gives the model back.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

from . import DATA_DIR
from .checkpoint import load_model, save_model
from .data import load_task, load_text, mlm_mask
from .fileio import atomic_write_text
from .layers import gelu
from .models.bert import BertConfig, BertForMaskedLM
from .tasks import corpus_sentences
from .training import TrainConfig, evaluate, train

NAME = "bert-word-jargon"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(5)
CONTEXT = 32  # [CLS] + at most 30 words + [SEP]
VOCAB_WORDS = 3000
SEED = 0
EVAL_BATCHES, EVAL_SEED, BATCH = 20, 1, 64
MAX_BYTES = 5 * 2**20
MODEL = {"context_length": CONTEXT, "d_model": 128, "n_layers": 2, "n_heads": 4, "d_ff": 256, "dropout": 0.1}
TRAIN = {"max_steps": 8000, "lr": 1e-3, "min_lr_ratio": 0.1, "warmup_steps": 100, "weight_decay": 0.01,
             "betas": (0.9, 0.98), "grad_clip": 1.0, "eval_interval": 500, "eval_batches": EVAL_BATCHES}


def normalize(word: str) -> str:
    """The token form of a whitespace word: lower case, surrounding punctuation stripped."""
    return word.lower().strip(".,;:!?\"'()[]")


class WordVocab:
    """Special tokens first, then words; ``encode`` gives one id per whitespace word."""

    def __init__(self, words: list[str]):
        self.itos = SPECIALS + [w for w in words if w not in SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def from_sentences(cls, sentences: list[str], size: int = VOCAB_WORDS) -> WordVocab:
        counts = Counter(normalize(w) for s in sentences for w in s.split())
        counts.pop("", None)
        return cls([w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, context: int = CONTEXT) -> torch.Tensor:
        """``[CLS] w_1 .. w_n [SEP]`` padded with ``[PAD]`` to ``context`` ids (1-D int64).

        The literal word ``[MASK]`` becomes the mask token. Raises ``ValueError`` when the
        sentence has more than ``context - 2`` words.
        """
        words = text.split()
        if len(words) > context - 2:
            raise ValueError(f"text: expected at most {context - 2} words, got {len(words)}")
        ids = [CLS] + [MASK if w == "[MASK]" else self.stoi.get(normalize(w), UNK) for w in words] + [SEP]
        return torch.tensor(ids + [PAD] * (context - len(ids)), dtype=torch.long)

    def decode(self, ids) -> list[str]:
        return [self.itos[i] for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]


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


def mlm_loss(model, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the masked positions only (labels -100 elsewhere); padding is not attended."""
    h = model.bert(inputs, attention_mask=inputs != PAD)[labels != -100]  # (n_masked, d_model)
    logits = model.mlm_out(model.mlm_norm(gelu(model.mlm_dense(h))))  # the head, masked rows only
    return F.cross_entropy(logits, labels[labels != -100])


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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        result = train(model, data.get_batch, cfg, loss_fn=mlm_loss)
        seconds = time.perf_counter() - start
        eval_loss = evaluate(model, data.get_batch, mlm_loss, batches=EVAL_BATCHES, seed=EVAL_SEED)
    finally:
        torch.set_num_threads(threads)
    info = {"name": NAME, "description": "word-level BERT (2 layers, 4 heads, 128 dims, context 32) "
                "pretrained with masked LM on Jargon File sentences",
                "model_config": model.config.to_dict(), "train_config": TRAIN, "seed": SEED,
                "vocab": data.vocab.itos, "n_sentences": {k: len(v) for k, v in data.splits.items()},
                "eval": {"split": "val", "batches": EVAL_BATCHES, "batch_size": BATCH, "seed": EVAL_SEED,
                         "loss": eval_loss},
                "train_seconds": round(seconds, 1), "steps": result.step, "log": result.log,
                "command": "python -m roadmap_lib.bert_experiment build", "torch": torch.__version__}
    weights = out_dir / f"{NAME}.safetensors"
    save_model(model, weights, config=model.config.to_dict())
    if weights.stat().st_size > MAX_BYTES:
        raise RuntimeError(f"{weights} is {weights.stat().st_size} bytes, over the {MAX_BYTES} limit")
    path = out_dir / f"{NAME}.json"
    atomic_write_text(path, json.dumps(info, indent=1) + "\n")
    return path


def info(zoo: Path | None = None) -> dict:
    path = (Path(zoo) if zoo else zoo_dir()) / f"{NAME}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not built: run `python -m roadmap_lib.bert_experiment build`")
    return json.loads(path.read_text(encoding="utf-8"))


def load(zoo: Path | None = None) -> tuple[BertForMaskedLM, WordVocab, dict]:
    """``(model, vocab, info)`` of the shipped pretrained encoder, in eval mode."""
    record = info(zoo)
    model = BertForMaskedLM(BertConfig(**record["model_config"]))
    load_model(model, (Path(zoo) if zoo else zoo_dir()) / f"{NAME}.safetensors")
    vocab = WordVocab([])
    vocab.itos, vocab.stoi = record["vocab"], {w: i for i, w in enumerate(record["vocab"])}
    return model.eval(), vocab, record


def verify(zoo: Path | None = None) -> tuple[float, float]:
    """``(recomputed, recorded)`` eval MLM loss of the shipped checkpoint."""
    model, vocab, record = load(zoo)
    data = MLMData(vocab)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loss = evaluate(model, data.get_batch, mlm_loss, batches=record["eval"]["batches"],
                        seed=record["eval"]["seed"])
    finally:
        torch.set_num_threads(threads)
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


def main(argv: list[str]) -> int:
    if argv[:1] == ["build"]:
        print(f"wrote {build()}")
    elif argv[:1] == ["verify"]:
        got, recorded = verify()
        print(f"{NAME}: eval MLM loss {got:.4f} (recorded {recorded:.4f})")
    else:
        print("usage: python -m roadmap_lib.bert_experiment build|verify", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


__all__ = ["CONTEXT", "MASK", "NAME", "PAD", "MLMData", "WordVocab", "build", "heldout_sentences",
           "info", "load", "mlm_loss", "normalize", "pretraining_sentences", "top_predictions", "verify", "word_surprise"]
