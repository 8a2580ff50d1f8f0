"""Log-probabilities of completions under a causal language model.

Every preference and policy-gradient loss of chapter 19 starts from one number per sequence,

    log π(y | x) = Σ_{t in y} log π(y_t | x, y_<t)                 (the sum: DPO, IPO, KTO, RLOO)
    log π(y | x) / |y|                                              (the mean: SimPO, ORPO)

``ids`` (batch, seq) hold prompt and completion side by side, right-padded; ``completion_mask``
(batch, seq) is 1 on the completion tokens and 0 on the prompt and the padding. Token ``t`` is
predicted by the logits at ``t - 1``, so per-token log-probs have shape (batch, seq - 1) and line up
with ``completion_mask[:, 1:]`` (trl's convention; position 0 is never scored).

:func:`sequence_logprobs` runs a model: ours (``model(ids) -> logits``) or a transformers causal LM
(``model(input_ids=..., attention_mask=...).logits``). :func:`collate_completions` builds the
padded ``ids`` and masks from lists of token ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._checks import check_float, check_mask, shape_of


def _check_ids(ids) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        got = f"{ids.dtype} tensor" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise TypeError(f"ids: expected an integer tensor of token ids, got {got}")
    if ids.ndim != 2 or ids.shape[1] < 2:
        raise ValueError(f"ids: expected shape (batch, seq) with seq >= 2 (a prompt token, then the completion), "
                         f"got {shape_of(ids)}")
    return ids


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log π(ids[:, t] | ids[:, <t]) for t = 1..seq-1: logits (batch, seq, vocab), ids (batch, seq)
    -> (batch, seq - 1). Half-precision logits are scored in float32."""
    _check_ids(ids)
    check_float("logits", logits, ndim=3)
    if logits.shape[:2] != ids.shape:
        raise ValueError(f"logits: expected shape {(*ids.shape, 'vocab')} to match ids, got {shape_of(logits)}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    logp = logits[:, :-1].log_softmax(-1)
    return logp.gather(-1, ids[:, 1:, None]).squeeze(-1)


def completion_token_logprobs(logits: torch.Tensor, ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """:func:`token_logprobs`, 0 where ``completion_mask[:, 1:]`` is 0 -> (batch, seq - 1)."""
    mask = check_mask("completion_mask", completion_mask, _check_ids(ids).shape)[:, 1:]
    return token_logprobs(logits, ids) * mask


def logprobs_from_logits(logits: torch.Tensor, ids: torch.Tensor, completion_mask: torch.Tensor, *,
                         average: bool = False) -> torch.Tensor:
    """Sum (or, ``average=True``, mean) of the completion's token log-probs -> (batch,)."""
    mask = check_mask("completion_mask", completion_mask, _check_ids(ids).shape)[:, 1:]
    total = (token_logprobs(logits, ids) * mask).sum(-1)
    if not average:
        return total
    counts = mask.sum(-1)
    if (counts == 0).any():
        rows = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"completion_mask: rows {rows} have no completion token after position 0; "
                         "their mean log-probability is undefined")
    return total / counts


def sequence_logprobs(model: nn.Module, ids: torch.Tensor, completion_mask: torch.Tensor, *,
                      attention_mask: torch.Tensor | None = None, average: bool = False) -> torch.Tensor:
    """log π(completion | prompt) of each row under ``model`` -> (batch,), differentiable.

    ``model(ids)`` returns logits (our models) or an output with ``.logits`` (transformers). Our
    models take right-padded ``ids`` (a causal model never looks at the padding after a token).
    With ``attention_mask`` (batch, seq) the call is ``model(input_ids=ids, attention_mask=...,
    position_ids=...)``, positions counted from each row's first real token as ``generate`` does,
    so a transformers model also scores left-padded rows correctly. ``average=True`` divides by the
    number of completion tokens (the length-normalised log-prob of SimPO and ORPO).
    """
    _check_ids(ids)
    check_mask("completion_mask", completion_mask, ids.shape)
    if attention_mask is None:
        out = model(ids)
    else:
        attention_mask = check_mask("attention_mask", attention_mask, ids.shape).long()
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=attention_mask, position_ids=position_ids)
    logits = out.logits if hasattr(out, "logits") else out
    return logprobs_from_logits(logits, ids, completion_mask, average=average)


def collate_completions(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], *,
                        pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad ``prompt + completion`` rows -> ``(ids, completion_mask, attention_mask)``, each
    (batch, longest row), int64. E.g. prompts ``[[5, 6]]``, completions ``[[7]]``, pad 0 (with a
    longer row elsewhere) -> ids ``[5, 6, 7, 0]``, completion_mask ``[0, 0, 1, 0]``,
    attention_mask ``[1, 1, 1, 0]``."""
    if len(prompts) != len(completions):
        raise ValueError(f"completions: expected {len(prompts)} rows like prompts, got {len(completions)}")
    if not prompts:
        raise ValueError("prompts: expected at least one row, got none")
    for i, (p, c) in enumerate(zip(prompts, completions)):
        if len(p) == 0:
            raise ValueError(f"prompts: row {i} is empty; the first completion token needs a token before it")
        if len(c) == 0:
            raise ValueError(f"completions: row {i} is empty")
    width = max(len(p) + len(c) for p, c in zip(prompts, completions))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    completion_mask = torch.zeros_like(ids)
    attention_mask = torch.zeros_like(ids)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        n = len(p) + len(c)
        ids[i, :n] = torch.tensor([*p, *c])
        completion_mask[i, len(p):n] = 1
        attention_mask[i, :n] = 1
    return ids, completion_mask, attention_mask


__all__ = ["collate_completions", "completion_token_logprobs", "logprobs_from_logits", "sequence_logprobs",
           "token_logprobs"]
