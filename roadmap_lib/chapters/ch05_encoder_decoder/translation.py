"""The original Transformer trained on the shipped English -> Zetan translation task (chapter 05).

    word vocabulary (shared by source and target, as the paper shares one embedding)
    -> batches (src, src_padding_mask, <bos> + tgt) -> (tgt + <eos>)
    -> roadmap_lib.training.train -> checkpoint in data/zoo/transformer-zetan.{safetensors,json}
    -> greedy and beam decoding -> corpus BLEU (roadmap_lib.metrics) and cross-attention maps

``python -m roadmap_lib build transformer-zetan`` retrains the shipped checkpoint (about a
minute on one CPU thread); ``... verify`` reloads it and recomputes its recorded loss and BLEU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from roadmap_lib import DATA_DIR
from roadmap_lib.checkpoint import save_model
from roadmap_lib.data import load_task, pad_batch
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.generation import beam_search
from roadmap_lib.measure import cpu_threads
from roadmap_lib.metrics import corpus_bleu
from roadmap_lib.models.encoder_decoder import Transformer, TransformerConfig
from roadmap_lib.models.seq2seq import BoundDecoder
from roadmap_lib.objectives import seq2seq_loss
from roadmap_lib.tasks import VERBS
from roadmap_lib.tokenizers.word import WordTokenizer
from roadmap_lib.training import TrainConfig, evaluate, train
from roadmap_lib.zoo import load_checkpoint

NAME = "transformer-zetan"
PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
MAX_LEN = 40  # longest sentence in words, plus <bos>/<eos>, with room to spare


class WordVocab(WordTokenizer):
    """Whitespace words of both languages (as written, no normalisation); ids 0-3 are <pad>,
    <bos>, <eos>, <unk>."""

    def __init__(self, words: list[str]) -> None:
        super().__init__(words, special_tokens=SPECIALS, unk_token="<unk>")

    @classmethod
    def from_rows(cls, rows: list[dict]) -> WordVocab:
        return cls(sorted({w for r in rows for w in (r["src"] + " " + r["tgt"]).split()}))

    def decode(self, ids) -> str:
        """Words of ``ids`` up to the first <eos>, special tokens dropped."""
        return super().decode(ids, stop_at="<eos>", skip=SPECIALS)


def encode_sources(vocab: WordVocab, sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(src (batch, S), src_padding_mask (batch, S), True = padding)``."""
    src = pad_batch([vocab.encode(s) for s in sentences], PAD)
    return src, src == PAD


def make_batch(vocab: WordVocab, rows: list[dict]):
    """``((src, src_padding_mask, tgt_in), tgt_out)``: tgt_in = <bos> + tgt, tgt_out = tgt + <eos>
    with padding as -100 (ignored by the loss)."""
    src, mask = encode_sources(vocab, [r["src"] for r in rows])
    tgt = [vocab.encode(r["tgt"]) for r in rows]
    tgt_in = pad_batch([[BOS] + t for t in tgt], PAD)
    tgt_out = pad_batch([t + [EOS] for t in tgt], -100)
    return (src, mask, tgt_in), tgt_out


@dataclass
class ExperimentConfig:
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 256
    dropout: float = 0.1
    batch_size: int = 64
    max_steps: int = 1500
    lr: float = 2e-3
    warmup_steps: int = 100
    seed: int = 0
    eval_sentences: int = 200  # test sentences the recorded BLEU is measured on
    num_beams: int = 4

    def model_config(self, vocab_size: int) -> TransformerConfig:
        return TransformerConfig(vocab_size=vocab_size, context_length=MAX_LEN, d_model=self.d_model,
                                 n_layers=self.n_layers, n_heads=self.n_heads, d_ff=self.d_ff,
                                 dropout=self.dropout)


def batch_sampler(vocab: WordVocab, batch_size: int):
    """``get_batch(split, generator)`` over the task's train/val rows, as training.train expects."""
    rows = {split: load_task("translation", split) for split in ("train", "val")}

    def get_batch(split: str, generator: torch.Generator):
        idx = torch.randint(len(rows[split]), (batch_size,), generator=generator).tolist()
        return make_batch(vocab, [rows[split][i] for i in idx])

    return get_batch


# --- decoding ------------------------------------------------------------------------------------


@torch.no_grad()
def greedy_translate(model: Transformer, vocab: WordVocab, sentences: list[str],
                     max_new_tokens: int = MAX_LEN - 2) -> list[str]:
    """Greedy decoding of a batch of source sentences (encoder run once, decoder with a KV cache)."""
    model.eval()
    src, mask = encode_sources(vocab, sentences)
    memory = model.encode(src, mask)
    decoder = BoundDecoder(model, memory, mask)
    ids = torch.full((len(sentences), 1), BOS, dtype=torch.long)
    cache = decoder.new_cache()
    done = torch.zeros(len(sentences), dtype=torch.bool)
    for step in range(max_new_tokens):
        logits = decoder(ids if step == 0 else ids[:, -1:], cache)[:, -1]
        token = torch.where(done, torch.full_like(done, PAD, dtype=torch.long), logits.argmax(-1))
        done |= token == EOS
        ids = torch.cat([ids, token[:, None]], dim=1)
        if done.all():
            break
    return [vocab.decode(row[1:]) for row in ids]


class _BeamDecoder(BoundDecoder):
    """A decoder bound to one source that accepts any number of beams (memory repeated per beam)."""

    def __call__(self, ids: torch.Tensor, cache=None) -> torch.Tensor:
        n = ids.shape[0]
        return self.model.decode(ids, self.memory.expand(n, -1, -1), self.src_padding_mask.expand(n, -1))


@torch.no_grad()
def beam_translate(model: Transformer, vocab: WordVocab, sentences: list[str], num_beams: int = 4,
                   length_penalty: float = 1.0, max_new_tokens: int = MAX_LEN - 2) -> list[str]:
    """Beam search (``roadmap_lib.generation.beam_search``) driving the decoder, one source at a time."""
    model.eval()
    out = []
    for sentence in sentences:
        src, mask = encode_sources(vocab, [sentence])
        decoder = _BeamDecoder(model, model.encode(src, mask), mask)
        best = beam_search(decoder, torch.tensor([[BOS]]), max_new_tokens, num_beams=num_beams,
                           length_penalty=length_penalty, eos_token_id=EOS)[0]
        out.append(vocab.decode(best[1:]))
    return out


@torch.no_grad()
def cross_attention(model: Transformer, vocab: WordVocab, source: str, target: str) -> torch.Tensor:
    """Cross-attention weights ``(layers, heads, T, S)`` while teacher-forcing ``<bos> + target``.

    Row t is what the decoder looks at in the source when it predicts target word t (or <eos>).
    """
    model.eval()
    src, mask = encode_sources(vocab, [source])
    tgt_in = torch.tensor([[BOS] + vocab.encode(target)])
    maps = []

    def hook(module, args, kwargs, output):
        if not kwargs.get("return_weights"):  # run once more, asking for the weights
            _, weights = module(*args, **{**kwargs, "return_weights": True})
            maps.append(weights[0])

    handles = [block.cross_attn.register_forward_hook(hook, with_kwargs=True) for block in model.decoder]
    try:
        model(src, tgt_in, mask)
    finally:
        for h in handles:
            h.remove()
    return torch.stack(maps)


def alignment_map(model: Transformer, vocab: WordVocab, row: dict, layer: int = -1,
                  head: int | None = None) -> tuple[torch.Tensor, list[str], list[str]]:
    """``(weights (T + 1, S), source words, predicted words + <eos>)``: one layer's cross-attention
    while reading the reference of ``row``, one head or (``head=None``) the mean of heads."""
    maps = cross_attention(model, vocab, row["src"], row["tgt"])[layer]
    weights = maps.mean(0) if head is None else maps[head]
    return weights, row["src"].split(), row["tgt"].split() + ["<eos>"]


def verb_alignment(model: Transformer, vocab: WordVocab, rows: list[dict], layer: int = -1) -> float:
    """Fraction of sentences where the Zetan verb (last word) attends most, averaged over heads, to
    the English verb (sentences with exactly one English verb form)."""
    forms = {form for verb in VERBS for form in verb}
    hits = total = 0
    for row in rows:
        verbs = [i for i, w in enumerate(row["src"].split()) if w in forms]
        if len(verbs) != 1:
            continue
        weights, _, target = alignment_map(model, vocab, row, layer)
        hits += int(weights[len(target) - 2].argmax() == verbs[0])
        total += 1
    if total == 0:
        raise ValueError("rows: expected at least one sentence with exactly one English verb")
    return hits / total


def bleu_of(model: Transformer, vocab: WordVocab, rows: list[dict], decoder: str = "greedy",
            num_beams: int = 4) -> tuple[float, list[str]]:
    """Corpus BLEU of greedy or beam translations of ``rows``; returns (score, hypotheses)."""
    sources = [r["src"] for r in rows]
    if decoder == "greedy":
        hyps = greedy_translate(model, vocab, sources)
    elif decoder == "beam":
        hyps = beam_translate(model, vocab, sources, num_beams=num_beams)
    else:
        raise ValueError(f"decoder: expected 'greedy' or 'beam', got {decoder!r}")
    return corpus_bleu(hyps, [r["tgt"] for r in rows]).score, hyps


# --- build, load, verify ---------------------------------------------------------------------------


def zoo_paths(zoo: Path | None = None) -> tuple[Path, Path]:
    zoo = DATA_DIR / "zoo" if zoo is None else Path(zoo)
    return zoo / f"{NAME}.safetensors", zoo / f"{NAME}.json"


def build(config: ExperimentConfig | None = None, zoo: Path | None = None, progress: bool = True) -> dict:
    """Train from scratch (one CPU thread) and write the checkpoint and its JSON record."""
    with cpu_threads(1):
        return _build(config or ExperimentConfig(), zoo, progress)


def _build(config: ExperimentConfig, zoo: Path | None, progress: bool) -> dict:
    torch.manual_seed(config.seed)
    vocab = WordVocab.from_rows(load_task("translation", "train"))
    model = Transformer(config.model_config(len(vocab)))
    get_batch = batch_sampler(vocab, config.batch_size)
    tc = TrainConfig(max_steps=config.max_steps, lr=config.lr, warmup_steps=config.warmup_steps,
                     weight_decay=0.01, betas=(0.9, 0.98), eval_interval=100, eval_batches=5,
                     seed=config.seed, progress=progress)
    result = train(model, get_batch, tc, loss_fn=seq2seq_loss)
    model.eval()
    test = load_task("translation", "test")[:config.eval_sentences]
    record = {
        "name": NAME,
        "description": "original Transformer (post-norm, sinusoidal, shared embeddings) trained on "
                       "data/tasks/translation (English -> Zetan), word-level vocabulary",
        "command": "python -m roadmap_lib build transformer-zetan",
        "experiment_config": asdict(config),
        "model_config": config.model_config(len(vocab)).to_dict(),
        "train_config": asdict(tc),
        "vocab": vocab.itos,
        "log": [{k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()} for row in result.log],
        "seconds": round(result.seconds, 1),
        "val_loss": evaluate(model, get_batch, seq2seq_loss, batches=5, seed=config.seed + 1),
        "test_bleu_greedy": bleu_of(model, vocab, test, "greedy")[0],
        "test_bleu_beam": bleu_of(model, vocab, test, "beam", config.num_beams)[0],
    }
    weights, meta = zoo_paths(zoo)
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, weights, config=record["model_config"], extra={"name": NAME})
    atomic_write_text(meta, json.dumps(record, indent=1) + "\n")
    return record


def load(zoo: Path | None = None) -> tuple[Transformer, WordVocab, dict]:
    """The shipped model (in eval mode), its vocabulary and its JSON record."""
    return load_checkpoint(NAME, lambda c: Transformer(TransformerConfig(**c)),
                           vocab_from_list=WordVocab, zoo_dir=zoo)


def verify(zoo: Path | None = None) -> dict:
    """Recompute the recorded validation loss and test BLEU from the shipped files."""
    model, vocab, record = load(zoo)
    cfg = ExperimentConfig(**record["experiment_config"])
    test = load_task("translation", "test")[:cfg.eval_sentences]
    return {"val_loss": evaluate(model, batch_sampler(vocab, cfg.batch_size), seq2seq_loss, batches=5,
                                 seed=cfg.seed + 1),
            "test_bleu_greedy": bleu_of(model, vocab, test, "greedy")[0],
            "test_bleu_beam": bleu_of(model, vocab, test, "beam", cfg.num_beams)[0]}



__all__ = ["ExperimentConfig", "WordVocab", "alignment_map", "batch_sampler", "beam_translate", "bleu_of", "build",
           "cross_attention", "encode_sources", "greedy_translate", "load", "make_batch", "seq2seq_loss",
           "verb_alignment", "verify", "zoo_paths"]
