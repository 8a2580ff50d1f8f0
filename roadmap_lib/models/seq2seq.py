"""Greedy decoding for encoder-decoder models (T5, BART, the original Transformer).

:mod:`roadmap_lib.generation` decodes any ``model(ids) -> logits``. An encoder-decoder is that once
its source is encoded: :class:`BoundDecoder` binds ``model.decode`` to one encoder output, and
:func:`greedy_seq2seq` starts every row from the decoder start token, as transformers'
``generate`` does for encoder-decoder models.
"""

from __future__ import annotations

import torch

from ..generation import greedy


class BoundDecoder:
    """``ids -> logits`` (and ``new_cache()``) for one encoded source; what generation expects.

    ``model`` has ``decode(tgt, memory, src_padding_mask, cache=None)`` and ``new_cache()``.
    """

    def __init__(self, model, memory: torch.Tensor, src_padding_mask: torch.Tensor | None = None):
        self.model, self.memory, self.src_padding_mask = model, memory, src_padding_mask

    def __call__(self, ids: torch.Tensor, cache=None) -> torch.Tensor:
        return self.model.decode(ids, self.memory, self.src_padding_mask, cache=cache)

    def new_cache(self):
        return self.model.new_cache()


@torch.no_grad()
def greedy_seq2seq(model, src: torch.Tensor, max_new_tokens: int, *,
                   src_padding_mask: torch.Tensor | None = None, start_token_id: int | None = None,
                   eos_token_id: int | None = None, pad_token_id: int | None = None,
                   use_cache: bool = True) -> torch.Tensor:
    """Encode ``src`` (batch, S) once, then decode greedily from the start token.

    ``start_token_id`` defaults to ``model.config.decoder_start_token_id``. Rows that emitted
    ``eos_token_id`` are padded with ``pad_token_id``. Returns ``(batch, 1 + generated)``,
    beginning with the start token, like transformers' ``generate``.
    """
    if start_token_id is None:
        start_token_id = model.config.decoder_start_token_id
    memory = model.encode(src, src_padding_mask)
    start = torch.full((src.shape[0], 1), start_token_id, dtype=torch.long, device=src.device)
    return greedy(BoundDecoder(model, memory, src_padding_mask), start, max_new_tokens,
                  eos_token_id=eos_token_id, pad_token_id=pad_token_id, use_cache=use_cache)


__all__ = ["BoundDecoder", "greedy_seq2seq"]
