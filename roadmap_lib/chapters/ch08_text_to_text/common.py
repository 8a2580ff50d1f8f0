"""Text-to-text on a word vocabulary (chapter 08): the vocabulary, the two pretraining noises, batches.

    sentence -> word ids -> noise (T5 span corruption, or BART text infilling) -> (input, target)
    -> batch (src, src_padding_mask, decoder input = start + target[:-1]) -> cross-entropy
    -> roadmap_lib.chapters.ch08_text_to_text.pretrain (both objectives, one T5 model, same budget)
    -> roadmap_lib.chapters.ch08_text_to_text.multitask (one model, two tasks told apart by a text prefix)

Both objectives train the *same* architecture (our :class:`~roadmap_lib.models.t5.T5`) so that the
comparison isolates the objective: BART's own model differs from T5 in positions, norms and
biases too, and a difference in results could not be pinned on the noise.

T5's span corruption {Raffel et al. 2020} hides about 15% of the words in short spans, each span
replaced by its own sentinel ``<extra_id_k>``; the target lists only the hidden spans.
BART's text infilling {Lewis et al. 2020} hides about 30% of the words in spans whose lengths are
Poisson(3) (a length-0 span inserts a mask), each span replaced by ONE ``<mask>`` (so the model must
also guess how many words are missing); the target is the whole original sentence.

``python -m roadmap_lib build all`` writes every ``data/zoo/t2t-*`` checkpoint (seeded,
one CPU thread); ``... verify`` reloads them and recomputes their recorded numbers.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch

from roadmap_lib import DATA_DIR
from roadmap_lib.checkpoint import save_model
from roadmap_lib.data import load_task, load_text, pad_batch
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.models.t5 import T5, T5Config
from roadmap_lib.objectives import bart_infill, seq2seq_loss, span_corrupt
from roadmap_lib.tasks import corpus_sentences
from roadmap_lib.tokenizers.word import WordTokenizer, frequent_words, normalize_word
from roadmap_lib.training import TrainConfig, evaluate, train
from roadmap_lib.zoo import load_checkpoint

PAD, EOS, UNK, MASK = 0, 1, 2, 3  # T5's pad doubles as the decoder start token
N_SENTINELS = 16
SPECIALS = ["<pad>", "</s>", "<unk>", "<mask>"] + [f"<extra_id_{k}>" for k in range(N_SENTINELS)]
SENTINELS = list(range(4, 4 + N_SENTINELS))
PREFIXES = {"translate": "translate English to Zetan:", "fix": "fix word order:"}
VOCAB_WORDS = 3000  # most frequent Jargon words; the rest are <unk>
MAX_WORDS = 30  # longest pretraining sentence
SEED = 0
MODEL = {"d_model": 64, "d_kv": 16, "d_ff": 256, "n_layers": 2, "n_heads": 4, "num_buckets": 16,
         "max_distance": 32, "dropout": 0.0}  # tiny and underfitting: no dropout
MAX_CHECKPOINT_BYTES = 3 * 2**20


# --- vocabulary ------------------------------------------------------------------------------------


class T2TVocab(WordTokenizer):
    """Special tokens, then words. ``encode`` gives one id per whitespace word (normalised as in
    chapter 06: lower case, surrounding punctuation stripped); special tokens written literally
    (``<mask>``, ``<extra_id_0>``) map to themselves."""

    def __init__(self, words: list[str]) -> None:
        super().__init__(words, special_tokens=SPECIALS, unk_token="<unk>", normalize=normalize_word)

    @classmethod
    def build(cls, sentences: list[str], size: int = VOCAB_WORDS) -> T2TVocab:
        """Prefix words, every word of the translation task, then the ``size`` most frequent words
        of ``sentences`` (ties broken alphabetically)."""
        frequent = frequent_words(sentences, size, normalize_word)
        task_words = sorted({w for r in load_task("translation", "train") for w in
                             (r["src"] + " " + r["tgt"]).split()})
        prefix_words = [normalize_word(w) for p in PREFIXES.values() for w in p.split()]
        return cls(prefix_words + task_words + frequent)

    def decode(self, ids, *, keep_special: bool = False) -> str:
        """Words of ``ids`` up to the first ``</s>``; padding dropped, other specials kept only
        with ``keep_special`` (``<unk>`` is always kept: it stands for a word)."""
        skip = ["<pad>"] if keep_special else [s for s in SPECIALS if s != "<unk>"]
        return super().decode(ids, stop_at="</s>", skip=skip)

    def normalized(self, text: str) -> str:
        """What the model can at best write back for ``text``: its words as this vocabulary sees them."""
        return self.decode(self.encode(text))


# --- the two noises ------------------------------------------------------------------------------


def t5_noise(ids: list[int], *, noise_density: float = 0.15, mean_span: float = 3.0,
             generator: torch.Generator | None = None) -> tuple[list[int], list[int]]:
    """T5 span corruption with this vocabulary's sentinels (:func:`roadmap_lib.objectives.span_corrupt`)."""
    return span_corrupt(ids, sentinel_ids=SENTINELS, noise_density=noise_density, mean_span=mean_span,
                        generator=generator)


def bart_noise(ids: list[int], *, mask_ratio: float = 0.3, poisson_lambda: float = 3.0,
               generator: torch.Generator | None = None) -> tuple[list[int], list[int]]:
    """BART text infilling with this vocabulary's ``<mask>`` (:func:`roadmap_lib.objectives.bart_infill`)."""
    return bart_infill(ids, mask_id=MASK, mask_ratio=mask_ratio, poisson_lambda=poisson_lambda,
                       generator=generator)


NOISES = {"span": t5_noise, "denoise": bart_noise}


# --- batches and the loss ------------------------------------------------------------------------


def make_batch(pairs: list[tuple[list[int], list[int]]], *, ignore: tuple[int, ...] = ()):
    """``((src, src_padding_mask, tgt_in), tgt_out)`` from (input ids, target ids) pairs, both
    without ``</s>``: the source and target get one, ``tgt_in`` = start (``<pad>``) + target shifted
    right, ``tgt_out`` padded with -100 (ignored by the loss). Target tokens listed in ``ignore``
    (e.g. ``(UNK,)``) stay in ``tgt_in`` but become -100 in ``tgt_out``: never predicted."""
    if not pairs:
        raise ValueError("pairs: expected at least one (input, target) pair, got none")
    src = pad_batch([list(s) + [EOS] for s, _ in pairs], PAD)
    tgt_in = pad_batch([[PAD] + list(t) for _, t in pairs], PAD)
    tgt_out = pad_batch([list(t) + [EOS] for _, t in pairs], -100)
    if ignore:
        tgt_out = tgt_out.masked_fill(torch.isin(tgt_out, torch.tensor(list(ignore))), -100)
    return (src, src == PAD, tgt_in), tgt_out


@torch.no_grad()
def generate(model, vocab: T2TVocab, texts: list[str], max_new_tokens: int = MAX_WORDS + 4,
             *, keep_special: bool = False, batch_size: int = 100) -> list[str]:
    """Greedy outputs (cached decoder) for a list of input texts."""
    model.eval()
    out = []
    for k in range(0, len(texts), batch_size):
        src = pad_batch([vocab.encode(t) + [EOS] for t in texts[k:k + batch_size]], PAD)
        ids = model.generate_greedy(src, max_new_tokens, src == PAD)
        out += [vocab.decode(row[1:], keep_special=keep_special) for row in ids]
    return out


# --- the model and the zoo -----------------------------------------------------------------------


def fit(model: T5, get_batch, train_config: dict, *, max_steps: int | None = None, progress: bool = True,
        eval_batches: int = 10, eval_seed: int = 1) -> tuple[dict, float]:
    """Train with ``train_config`` (``max_steps`` shortens it, without warm-up, for tests), round
    the weights to float16 as they will be shipped, and measure the validation loss on them.
    Returns ``(summary, val_loss)``: summary = steps, seconds and the log (every 10th step and
    every evaluation)."""
    overrides = {} if max_steps is None else {"max_steps": max_steps, "warmup_steps": 0}
    cfg = TrainConfig(**{**train_config, **overrides}, seed=SEED, progress=progress)
    start = time.perf_counter()
    result = train(model, get_batch, cfg, loss_fn=seq2seq_loss)
    seconds = time.perf_counter() - start
    round_to_fp16(model)
    val_loss = evaluate(model, get_batch, seq2seq_loss, batches=eval_batches, seed=eval_seed)
    log = [{k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()}
           for r in result.log if r["step"] % 10 == 0 or "val_loss" in r]
    return {"steps": result.step, "seconds": round(seconds, 1), "log": log}, val_loss


def new_model(vocab_size: int, seed: int = SEED) -> T5:
    torch.manual_seed(seed)
    return T5(T5Config(vocab_size=vocab_size, **MODEL))


def zoo_dir() -> Path:
    return DATA_DIR / "zoo"


def save(model: T5, vocab: T2TVocab, record: dict, name: str, zoo: Path | None = None) -> Path:
    """Weights stored in float16 (the model must already hold fp16-rounded weights, see
    :func:`round_to_fp16`, so recorded numbers are those of the shipped file) and a JSON record."""
    zoo = Path(zoo) if zoo else zoo_dir()
    zoo.mkdir(parents=True, exist_ok=True)
    weights = zoo / f"{name}.safetensors"
    save_model(copy.deepcopy(model).half(), weights, config=model.config.to_dict(), extra={"name": name})
    if weights.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise RuntimeError(f"{weights}: {weights.stat().st_size} bytes, over {MAX_CHECKPOINT_BYTES}")
    atomic_write_text(zoo / f"{name}.json", json.dumps({**record, "vocab": vocab.itos}, indent=1) + "\n")
    return weights


@torch.no_grad()
def round_to_fp16(model: T5) -> T5:
    for p in model.parameters():
        p.copy_(p.half().float())
    return model


def load(name: str, zoo: Path | None = None) -> tuple[T5, T2TVocab, dict]:
    """``(model in eval mode, vocabulary, JSON record)`` of one shipped ``t2t-*`` checkpoint."""
    model, vocab, record = load_checkpoint(name, lambda c: T5(T5Config(**c)), vocab_from_list=T2TVocab,
                                           zoo_dir=zoo)
    return model.float(), vocab, record  # stored in float16, computed in float32


def original_of(row: dict) -> str:
    """The unswapped sentence of an acceptability row (swap_i = -1 for originals)."""
    words = row["text"].split()
    i, j = int(row["swap_i"]), int(row["swap_j"])
    if i >= 0:
        words[i], words[j] = words[j], words[i]
    return " ".join(words)


def heldout_sentences() -> set[str]:
    """The originals of the acceptability task's validation and test sentences: never pretrained on."""
    return {original_of(r) for split in ("val", "test") for r in load_task("acceptability", split)}


def pretraining_sentences() -> list[str]:
    """The Jargon File's prose sentences of 4 to 30 words, minus :func:`heldout_sentences` (the
    same set as chapter 06's BERT was pretrained on when these checkpoints were built)."""
    held = heldout_sentences()
    return [s for s in corpus_sentences(load_text(), min_words=4, max_words=MAX_WORDS) if s not in held]


def corpus_vocab() -> T2TVocab:
    return T2TVocab.build(pretraining_sentences())



__all__ = ["EOS", "MASK", "MODEL", "NOISES", "PAD", "PREFIXES", "SENTINELS", "SPECIALS", "UNK", "T2TVocab",
           "bart_noise", "corpus_vocab", "fit", "generate", "heldout_sentences", "load", "make_batch", "new_model", "original_of", "pretraining_sentences",
           "round_to_fp16", "save", "t5_noise", "zoo_dir"]
