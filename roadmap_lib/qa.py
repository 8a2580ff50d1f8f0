"""Extractive question answering: a start/end span head on an encoder, its loss, and span decoding.

The input is one sequence ``[CLS] question [SEP] context [SEP]`` (segment ids 0, then 1). A linear
layer maps every hidden state to two numbers, a *start* and an *end* logit, as BERT does for SQuAD
(Devlin et al., 2019, section 4.2)::

    hidden (batch, seq, d_model) -> Linear(d_model, 2) -> start_logits, end_logits (batch, seq)

- :class:`BertForQuestionAnswering`: that head on :class:`~roadmap_lib.models.bert.BertEncoder`;
  same layout and outputs as transformers' ``BertForQuestionAnswering`` (no pooler, no dropout
  before the head).
- :func:`span_loss`: the mean of the start and end cross-entropies over positions, with
  transformers' convention for answers that are not in the sequence: a position outside
  ``[0, seq)`` is clamped to ``seq`` and ignored.
- :func:`best_span`: the answer at inference, ``argmax_{i <= j < i + max_answer_len} start[i] +
  end[j]`` over the positions a mask allows (the context's words), as transformers' QA pipeline
  decodes. ``end`` is **inclusive** here, as in ``start_positions``/``end_positions``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .models.bert import BertConfig, BertEncoder


class BertForQuestionAnswering(nn.Module):
    """The encoder plus a start/end head: ids (batch, seq) -> (start_logits, end_logits), each (batch, seq)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BertEncoder(config)
        self.qa_outputs = nn.Linear(config.d_model, 2)
        nn.init.normal_(self.qa_outputs.weight, std=0.02)
        nn.init.zeros_(self.qa_outputs.bias)

    def forward(self, ids, token_type_ids=None, attention_mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.qa_outputs(self.bert(ids, token_type_ids, attention_mask))
        start, end = logits.unbind(-1)
        return start, end


def _check_logits(start_logits: torch.Tensor, end_logits: torch.Tensor) -> None:
    for name, x in (("start_logits", start_logits), ("end_logits", end_logits)):
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name}: expected a (batch, seq) tensor, got {got}")
    if start_logits.shape != end_logits.shape:
        raise ValueError(f"end_logits: expected the shape of start_logits {tuple(start_logits.shape)}, "
                         f"got {tuple(end_logits.shape)}")


def span_loss(start_logits: torch.Tensor, end_logits: torch.Tensor, start_positions: torch.Tensor,
              end_positions: torch.Tensor) -> torch.Tensor:
    """``(CE(start_logits, start) + CE(end_logits, end)) / 2``, each averaged over the batch.

    ``start_logits``, ``end_logits``: (batch, seq); ``start_positions``, ``end_positions``: (batch,)
    token indices, ``end`` inclusive. A position outside ``[0, seq)`` (an answer truncated away) is
    ignored, as transformers' ``BertForQuestionAnswering`` does by clamping it to ``seq``.
    """
    _check_logits(start_logits, end_logits)
    batch, seq = start_logits.shape
    for name, p in (("start_positions", start_positions), ("end_positions", end_positions)):
        if not isinstance(p, torch.Tensor) or p.shape != (batch,) or p.is_floating_point():
            got = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
            raise ValueError(f"{name}: expected an integer tensor of shape ({batch},), got {got}")
    start = start_positions.clamp(0, seq)
    end = end_positions.clamp(0, seq)
    return (F.cross_entropy(start_logits, start, ignore_index=seq)
            + F.cross_entropy(end_logits, end, ignore_index=seq)) / 2


def best_span(start_logits: torch.Tensor, end_logits: torch.Tensor, *, max_answer_len: int,
              allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The best valid span of each row: ``(start, end)``, two (batch,) tensors, ``end`` inclusive.

    Valid: ``start <= end < start + max_answer_len`` and both positions ``allowed`` ((batch, seq)
    bool, e.g. the context's tokens; all positions when None). The score of a span is
    ``start_logits[start] + end_logits[end]``; ties go to the earliest start, then the earliest end.
    A row with no allowed position raises ``ValueError``.
    """
    _check_logits(start_logits, end_logits)
    if not isinstance(max_answer_len, int) or isinstance(max_answer_len, bool) or max_answer_len < 1:
        raise ValueError(f"max_answer_len: expected an int >= 1, got {max_answer_len!r}")
    batch, seq = start_logits.shape
    if allowed is None:
        allowed = torch.ones(batch, seq, dtype=torch.bool, device=start_logits.device)
    if allowed.shape != (batch, seq) or allowed.dtype != torch.bool:
        raise ValueError(f"allowed: expected a bool tensor of shape ({batch}, {seq}), "
                         f"got {allowed.dtype} {tuple(allowed.shape)}")
    if not allowed.any(-1).all():
        row = int((~allowed.any(-1)).nonzero()[0])
        raise ValueError(f"allowed: row {row} allows no position, so it has no span to answer with")
    i = torch.arange(seq, device=start_logits.device)
    valid = (i[None, :] >= i[:, None]) & (i[None, :] < i[:, None] + max_answer_len)  # (start, end)
    valid = valid[None] & allowed[:, :, None] & allowed[:, None, :]
    scores = start_logits.double()[:, :, None] + end_logits.double()[:, None, :]  # (batch, start, end)
    flat = scores.masked_fill(~valid, float("-inf")).flatten(1).argmax(-1)  # first maximum: row-major order
    return flat // seq, flat % seq


__all__ = ["BertForQuestionAnswering", "best_span", "span_loss"]
