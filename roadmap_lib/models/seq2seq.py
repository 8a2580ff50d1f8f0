"""What encoder-decoder models share: the decoder loop with its caches, and greedy decoding.

:mod:`roadmap_lib.generation` decodes any ``model(ids) -> logits``. An encoder-decoder is that once
its source is encoded: :class:`BoundDecoder` binds ``model.decode`` to one encoder output, and
:func:`greedy_seq2seq` starts every row from the decoder start token, as transformers'
``generate`` does for encoder-decoder models. :class:`EncoderDecoderMixin` gives T5 and BART
their common methods around their own ``encode`` and ``decode``.
"""

from __future__ import annotations

import torch

from ..attention import KVCache
from ..generation import greedy


def check_config(config, positive: tuple[str, ...], probabilities: tuple[str, ...]) -> None:
    """The checks every encoder-decoder config needs: sizes are positive ints, the special
    token ids are in the vocabulary, dropout rates are probabilities."""
    for name in positive:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    for name in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
        value = getattr(config, name)
        if not 0 <= value < config.vocab_size:
            raise ValueError(
                f"{name}: expected a token id in [0, {config.vocab_size}), got {value}"
            )
    for name in probabilities:
        if not 0.0 <= getattr(config, name) < 1.0:
            raise ValueError(
                f"{name}: expected a probability in [0, 1), got {getattr(config, name)}"
            )


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
def greedy_seq2seq(
    model,
    src: torch.Tensor,
    max_new_tokens: int,
    *,
    src_padding_mask: torch.Tensor | None = None,
    start_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Encode ``src`` (batch, S) once, then decode greedily from the start token.

    ``start_token_id`` defaults to ``model.config.decoder_start_token_id``. Rows that emitted
    ``eos_token_id`` are padded with ``pad_token_id``. Returns ``(batch, 1 + generated)``,
    beginning with the start token, like transformers' ``generate``.
    """
    if start_token_id is None:
        start_token_id = model.config.decoder_start_token_id
    memory = model.encode(src, src_padding_mask)
    start = torch.full((src.shape[0], 1), start_token_id, dtype=torch.long, device=src.device)
    return greedy(
        BoundDecoder(model, memory, src_padding_mask),
        start,
        max_new_tokens,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        use_cache=use_cache,
    )


class EncoderDecoderMixin:
    """``new_cache``, ``forward`` (teacher forcing) and ``generate_greedy`` for a module with
    ``encode(src, src_padding_mask)``, ``decode(tgt, memory, src_padding_mask, cache)``, a
    ``decoder`` list of cross-attention blocks and a config with the special token ids."""

    def new_cache(self) -> list[tuple[KVCache, KVCache]]:
        """Per decoder layer: (self-attention cache, cross-attention cache)."""
        return [(KVCache(), KVCache()) for _ in self.decoder]

    def _run_decoder(
        self, x: torch.Tensor, memory: torch.Tensor, src_padding_mask, cache, **block_kwargs
    ) -> torch.Tensor:
        """x (batch, T, d_model) through every decoder block, each with its pair of caches."""
        for i, block in enumerate(self.decoder):
            self_cache, cross_cache = cache[i] if cache else (None, None)
            x = block(
                x,
                memory,
                context_padding_mask=src_padding_mask,
                cache=self_cache,
                cross_cache=cross_cache,
                **block_kwargs,
            )
        return x

    def forward(
        self, src: torch.Tensor, tgt: torch.Tensor, src_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher forcing: logits (batch, T, vocab) for every target position at once."""
        return self.decode(tgt, self.encode(src, src_padding_mask), src_padding_mask)

    def generate_greedy(
        self,
        src: torch.Tensor,
        max_new_tokens: int,
        src_padding_mask: torch.Tensor | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Greedy decoding from ``decoder_start_token_id``, rows stopping at ``eos_token_id`` and
        padded with ``pad_token_id`` (as transformers' ``generate(do_sample=False, num_beams=1)``)."""
        c = self.config
        return greedy_seq2seq(
            self,
            src,
            max_new_tokens,
            src_padding_mask=src_padding_mask,
            eos_token_id=c.eos_token_id,
            pad_token_id=c.pad_token_id,
            use_cache=use_cache,
        )


__all__ = ["BoundDecoder", "EncoderDecoderMixin", "check_config", "greedy_seq2seq"]
