"""Chapter 08's span-corruption batches against the reference recipe: transformers' flax example
``DataCollatorForT5MLM`` (``examples/flax/language-modeling/run_t5_mlm_flax.py``), re-implemented
here from its definitions (the example is not part of the installed package), and transformers'
own ``T5ForConditionalGeneration._shift_right`` for the decoder input.

The collator draws a noise mask, then builds both sequences from it: every noise span of the input
becomes one sentinel (``create_sentinel_ids`` + ``filter_input_ids``), every non-noise span of the
labels becomes one sentinel, and ``</s>`` ends both. Given the same mask, our
:func:`roadmap_lib.objectives.span_corrupt` must give the same input and target.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.chapters.ch08_text_to_text.common import EOS, PAD, SENTINELS, make_batch, t5_noise
from roadmap_lib.chapters.ch08_text_to_text.diagnose import noise_mask_of

VOCAB = 40  # ids 20..39 are words; sentinels as in the chapter (4..19), counting down from the top in HF


def hf_sentinel_ids(mask: np.ndarray, vocab_len: int) -> np.ndarray:
    """``DataCollatorForT5MLM.create_sentinel_ids``: the first token of each span -> a sentinel id
    counting down from ``vocab_len - 1`` (T5's ``<extra_id_0>`` is the last id), the span's other
    tokens -> -1, everything else 0."""
    start = mask - np.roll(mask, 1, axis=-1) * mask
    start[:, 0] = mask[:, 0]
    ids = np.where(start != 0, np.cumsum(start, axis=-1), start)
    ids = np.where(ids != 0, vocab_len - ids, 0)
    return ids - (mask - start)


def hf_filter(input_ids: np.ndarray, sentinel_ids: np.ndarray, eos: int) -> np.ndarray:
    """``DataCollatorForT5MLM.filter_input_ids``: sentinels in, span tails out, ``</s>`` appended."""
    full = np.where(sentinel_ids != 0, sentinel_ids, input_ids)
    kept = full[full >= 0].reshape((input_ids.shape[0], -1))
    return np.concatenate([kept, np.full((input_ids.shape[0], 1), eos)], axis=-1)


def hf_collate(ids: list[int], noise: list[bool], vocab_len: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of the collator for one sequence and its noise mask."""
    x, mask = np.array([ids]), np.array([noise], dtype=np.int8)
    inputs = hf_filter(x, hf_sentinel_ids(mask, vocab_len), EOS)
    labels = hf_filter(x, hf_sentinel_ids(1 - mask, vocab_len), EOS)
    return inputs[0].tolist(), labels[0].tolist()


def hf_noise_counts(length: int, noise_density: float, mean_span: float) -> tuple[int, int]:
    """``random_spans_noise_mask``'s number of noise tokens and of noise spans."""
    n_noise = min(max(int(np.round(length * noise_density)), 1), length - 1)
    n_spans = max(int(np.round(min(n_noise, length - n_noise) / mean_span)), 1)
    return n_noise, n_spans


def to_hf(seq: list[int]) -> list[int]:
    """Our sentinel k (id SENTINELS[k]) -> the collator's (VOCAB - 1 - k)."""
    return [VOCAB - 1 - SENTINELS.index(t) if t in SENTINELS else t for t in seq]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(20, VOCAB - 1), min_size=4, max_size=30), st.sampled_from([0.15, 0.3, 0.5]),
       st.sampled_from([1.0, 2.0, 3.0]), st.integers(0, 10_000))
def test_span_corruption_equals_the_transformers_collator_given_the_same_mask(ids, density, mean_span, seed):
    noisy, target = t5_noise(ids, noise_density=density, mean_span=mean_span,
                             generator=torch.Generator().manual_seed(seed))
    mask = noise_mask_of(ids, noisy, target)
    # the collator's masks start with a kept span and end with a noise span; ours may start with
    # noise and always end with a kept word. Framed by one kept word X before and one noise word D
    # after, any mask has the collator's shape: compare inside that frame.
    X, D = 20, 21
    hf_inputs, hf_labels = hf_collate([X, *ids, D], [False, *mask, True], VOCAB)
    last = VOCAB - 1 - sum(t in SENTINELS for t in target)  # the frame's extra sentinel, for D
    assert [X, *to_hf(noisy), last, EOS] == hf_inputs
    assert [*to_hf(target), last, D, EOS] == hf_labels
    # same amounts as the collator's random_spans_noise_mask, whenever the sentinels suffice
    n_noise, n_spans = hf_noise_counts(len(ids), density, mean_span)
    if n_spans <= len(SENTINELS) and n_noise <= len(ids) - n_noise:
        assert sum(mask) == n_noise
        assert sum(t in SENTINELS for t in target) == n_spans


def test_where_the_collator_and_we_differ_the_first_and_last_word():
    """The collator's mask always starts with a kept span and ends with a noise span (T5 runs it on
    long packed streams, where the ends do not matter); ours may hide the first word and always
    keeps the last, so on one sentence every word can be hidden except the last."""
    ids = list(range(20, 35))
    first = last = 0
    for seed in range(300):
        noisy, target = t5_noise(ids, noise_density=0.3, generator=torch.Generator().manual_seed(seed))
        mask = noise_mask_of(ids, noisy, target)
        first += mask[0]
        last += mask[-1]
    assert last == 0 and 20 < first < 120  # the first word is hidden sometimes (~30%), the last never


@pytest.mark.slow
def test_decoder_input_is_transformers_shift_right():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.T5Config(vocab_size=VOCAB, d_model=8, d_kv=4, d_ff=8, num_layers=1, num_heads=2,
                                decoder_start_token_id=PAD, pad_token_id=PAD, eos_token_id=EOS)
    hf = transformers.T5ForConditionalGeneration(cfg)
    g = torch.Generator().manual_seed(0)
    pairs = [t5_noise(list(range(20, 20 + n)), noise_density=0.3, generator=g) for n in (5, 12, 19)]
    (_, _, tgt_in), labels = make_batch(pairs)
    hf_in = hf._shift_right(labels)  # start token, labels shifted right, -100 -> <pad>
    read = labels != -100  # positions whose outputs are scored: the decoder input there is the same
    assert torch.equal(tgt_in[read], hf_in[read])
    # after a row's </s>, transformers feeds </s> and we feed <pad>; those outputs are never scored
    # and, the decoder being causal, change nothing before them
    assert set(hf_in[~read].tolist()) <= {PAD, EOS} and set(tgt_in[~read].tolist()) == {PAD}
