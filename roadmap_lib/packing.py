"""Sequence packing: several documents in one row, kept apart by a block-diagonal causal mask.

Training batches are rectangles, documents are not. **Padding** puts one document per row and
fills the rest with a pad token: simple, but every pad position is computed and thrown away.
**Packing** fills each row with several whole documents (first fit, in order) and keeps them apart:

- a *document-causal* mask: token ``i`` may attend to token ``j`` iff both belong to the same
  document and ``j <= i`` (a block-diagonal of causal triangles);
- positions restart at 0 at every document, so a document sees exactly what it would see alone;
- the last token of a document has no target (the next token belongs to another document).

With these three, each document's logits, and so the loss, are those of the document run alone
(``tests/test_packing.py``); only the waste changes. This is what "packing with
cross-document attention masking" means in Llama 3's report and in transformers'
``DataCollatorWithFlattening`` (there via ``position_ids`` that restart at 0).

Shapes: a :class:`PackedBatch` holds ``(rows, seq_len)`` tensors. Padding positions carry
``doc_ids == -1``, ``labels == -100``; they attend only to other padding (so no softmax row is empty).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100


@dataclass
class PackedBatch:
    """``ids``, ``doc_ids``, ``positions``, ``labels``: ``(rows, seq_len)`` int64 tensors."""

    ids: torch.Tensor
    doc_ids: torch.Tensor
    positions: torch.Tensor
    labels: torch.Tensor

    @property
    def pad_fraction(self) -> float:
        """Share of the rectangle's positions that hold no token."""
        return float((self.doc_ids < 0).float().mean())

    @property
    def n_targets(self) -> int:
        return int((self.labels != IGNORE).sum())


def _check_docs(docs, seq_len: int | None) -> None:
    if not isinstance(docs, (list, tuple)) or not docs:
        raise ValueError(f"docs: expected a non-empty list of token-id lists, got {type(docs).__name__}")
    for i, d in enumerate(docs):
        if len(d) < 1:
            raise ValueError(f"docs[{i}]: expected at least 1 token, got an empty document")
        if seq_len is not None and len(d) > seq_len:
            raise ValueError(f"docs[{i}]: expected at most seq_len={seq_len} tokens, got {len(d)} "
                             f"(split long documents before packing)")


def _rows_to_batch(rows: list[list[int]], seq_len: int, docs, pad_id: int) -> PackedBatch:
    n = len(rows)
    ids = torch.full((n, seq_len), pad_id, dtype=torch.long)
    doc_ids = torch.full((n, seq_len), -1, dtype=torch.long)
    positions = torch.zeros((n, seq_len), dtype=torch.long)
    labels = torch.full((n, seq_len), IGNORE, dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for d in row:
            doc = torch.as_tensor(docs[d], dtype=torch.long)
            end = start + len(doc)
            ids[r, start:end] = doc
            doc_ids[r, start:end] = d
            positions[r, start:end] = torch.arange(len(doc))
            labels[r, start:end - 1] = doc[1:]  # the last token of a document predicts nothing
            start = end
    return PackedBatch(ids, doc_ids, positions, labels)


def pad_documents(docs: list[list[int]], pad_id: int = 0, seq_len: int | None = None) -> PackedBatch:
    """One document per row, padded to ``seq_len`` (default: the longest document)."""
    _check_docs(docs, seq_len)
    seq_len = max(len(d) for d in docs) if seq_len is None else seq_len
    return _rows_to_batch([[i] for i in range(len(docs))], seq_len, docs, pad_id)


def pack_documents(docs: list[list[int]], seq_len: int, pad_id: int = 0) -> PackedBatch:
    """Whole documents into rows of ``seq_len``, first fit in the given order (no document is split).

    Each document goes into the first row with room for it, else opens a new row.
    """
    if not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len: expected an int >= 1, got {seq_len!r}")
    _check_docs(docs, seq_len)
    rows: list[list[int]] = []
    free: list[int] = []
    for i, d in enumerate(docs):
        for r, room in enumerate(free):
            if len(d) <= room:
                rows[r].append(i)
                free[r] -= len(d)
                break
        else:
            rows.append([i])
            free.append(seq_len - len(d))
    return _rows_to_batch(rows, seq_len, docs, pad_id)


def document_causal_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """doc_ids ``(rows, seq)`` -> boolean mask ``(rows, 1, seq, seq)``, True where query ``i`` may
    attend to key ``j``: same document and ``j <= i``."""
    if not isinstance(doc_ids, torch.Tensor) or doc_ids.ndim != 2 or doc_ids.is_floating_point():
        got = f"shape {tuple(doc_ids.shape)}, {doc_ids.dtype}" if isinstance(doc_ids, torch.Tensor) else type(doc_ids).__name__
        raise ValueError(f"doc_ids: expected a (rows, seq) integer tensor, got {got}")
    seq = doc_ids.shape[1]
    same = doc_ids[:, :, None] == doc_ids[:, None, :]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=doc_ids.device).tril()
    return (same & causal).unsqueeze(1)


def packed_gpt_logits(model: nn.Module, batch: PackedBatch) -> torch.Tensor:
    """Logits ``(rows, seq, vocab)`` of a :class:`~roadmap_lib.models.gpt.GPT` on a packed batch:
    GPT's forward with per-document positions and the document-causal mask."""
    for name in ("wte", "wpe", "blocks", "ln_f", "lm_head"):
        if not hasattr(model, name):
            raise TypeError(f"model: expected a roadmap_lib GPT (with .{name}), got {type(model).__name__}")
    if batch.ids.shape[1] > model.config.context_length:
        raise ValueError(f"batch: rows of {batch.ids.shape[1]} tokens exceed the model's context length "
                         f"{model.config.context_length}")
    mask = document_causal_mask(batch.doc_ids)
    x = model.drop(model.wte(batch.ids) + model.wpe(batch.positions))
    for block in model.blocks:
        x = block(x, attn_mask=mask)
    return model.lm_head(model.ln_f(x))


def packed_lm_loss(model: nn.Module, batch: PackedBatch, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over every real target of the batch (``"mean"`` or ``"sum"``)."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    logits = packed_gpt_logits(model, batch)
    return F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), ignore_index=IGNORE, reduction=reduction)


__all__ = [
    "IGNORE",
    "PackedBatch",
    "document_causal_mask",
    "pack_documents",
    "packed_gpt_logits",
    "packed_lm_loss",
    "pad_documents",
]
