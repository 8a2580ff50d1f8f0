"""Chapter 22's translation row: chapter 05's shipped ``transformer-zetan`` (no retraining) against a
word-by-word dictionary, on the English -> Zetan test split, scored with BLEU and chrF.

- :func:`load_zetan` loads the zoo checkpoint with the core loader; :func:`translate` decodes
  greedily with :func:`roadmap_lib.models.seq2seq.greedy_seq2seq` (the model's own recorded
  greedy BLEU is the check that this reproduces chapter 05).
- :class:`DictionaryTranslator` learns one Zetan word per English word from the training pairs by
  the Dice coefficient of their sentence co-occurrence, ``2 c(e, z) / (c(e) + c(z))``, and
  translates word by word in English order. It knows the lexicon; it cannot reorder.
- :func:`segment_statistics` keeps each sentence's BLEU and chrF statistics, so a bootstrap
  resample sums rows instead of re-tokenising the corpus (corpus BLEU/chrF are functions of the
  summed statistics).
"""

from __future__ import annotations

from collections import Counter

import torch

from roadmap_lib.data import pad_batch
from roadmap_lib.measure import cpu_threads
from roadmap_lib.metrics import (
    bleu_from_statistics,
    bleu_statistics,
    chrf_from_statistics,
    chrf_statistics,
)
from roadmap_lib.models.encoder_decoder import Transformer, TransformerConfig
from roadmap_lib.models.seq2seq import greedy_seq2seq
from roadmap_lib.tokenizers.word import WordTokenizer
from roadmap_lib.zoo import load_checkpoint

MODEL = "transformer-zetan"
PAD, BOS, EOS = 0, 1, 2  # the checkpoint's special ids: <pad>, <bos>, <eos>, <unk>


def load_zetan() -> tuple[Transformer, WordTokenizer, dict]:
    """``(model in eval mode, its word vocabulary, its record)`` of chapter 05's translation model."""
    def vocab_from_list(itos):
        return WordTokenizer(itos[4:], special_tokens=itos[:4], unk_token="<unk>")

    return load_checkpoint(MODEL, lambda c: Transformer(TransformerConfig(**c)), vocab_from_list=vocab_from_list)


@torch.no_grad()
def translate(model: Transformer, vocab: WordTokenizer, sentences: list[str], batch_size: int = 250) -> list[str]:
    """Greedy translations (encoder once, decoder with a KV cache), special tokens dropped."""
    out = []
    with cpu_threads(1):
        for k in range(0, len(sentences), batch_size):
            src = pad_batch([vocab.encode(s) for s in sentences[k:k + batch_size]], PAD)
            ids = greedy_seq2seq(model, src, model.config.context_length - 2, src_padding_mask=src == PAD,
                                 start_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
            out += [vocab.decode(row[1:].tolist(), stop_at="<eos>", skip=vocab.special_tokens) for row in ids]
    return out


class DictionaryTranslator:
    """Word-by-word translation with a lexicon learned from ``(src, tgt)`` sentence pairs."""

    def __init__(self, pairs: list[tuple[str, str]]):
        if not pairs:
            raise ValueError("pairs: expected at least one (src, tgt) sentence pair, got none")
        c_e, c_z, c_ez = Counter(), Counter(), Counter()
        for src, tgt in pairs:
            e, z = set(src.split()), set(tgt.split())
            c_e.update(e)
            c_z.update(z)
            c_ez.update((a, b) for a in e for b in z)
        best: dict[str, tuple[float, str]] = {}
        for (a, b), n in sorted(c_ez.items()):
            dice = 2 * n / (c_e[a] + c_z[b])
            if dice > best.get(a, (0.0, ""))[0]:
                best[a] = (dice, b)
        self.lexicon = {a: b for a, (_, b) in best.items()}
        self.dice = {a: d for a, (d, _) in best.items()}

    def __call__(self, sentence: str) -> str:
        """The sentence's words replaced one by one; a word never seen in training is dropped."""
        return " ".join(self.lexicon[w] for w in sentence.split() if w in self.lexicon)


def segment_statistics(hypotheses: list[str], references: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bleu (n, 10), chrf (n, 18))`` int64 statistics per sentence, sacrebleu's defaults."""
    if len(hypotheses) != len(references):
        raise ValueError(f"references: expected {len(hypotheses)} (one per hypothesis), got {len(references)}")
    bleu = torch.tensor([bleu_statistics(h, [r]) for h, r in zip(hypotheses, references)])
    chrf = torch.tensor([chrf_statistics(h, [r]) for h, r in zip(hypotheses, references)])
    return bleu, chrf


def corpus_bleu_of(stats: torch.Tensor) -> float:
    """Corpus BLEU (0-100) of per-sentence statistics (n, 10)."""
    return bleu_from_statistics(stats.sum(0).tolist()).score


def corpus_chrf_of(stats: torch.Tensor) -> float:
    """Corpus chrF (0-100) of per-sentence statistics (n, 18)."""
    return chrf_from_statistics(stats.sum(0).tolist())


__all__ = ["DictionaryTranslator", "corpus_bleu_of", "corpus_chrf_of", "load_zetan", "segment_statistics",
           "translate"]
