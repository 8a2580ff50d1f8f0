"""Training objectives: the losses and the input corruptions of the book's pretraining recipes.

- causal language modelling (GPT): :func:`lm_loss`;
- masked language modelling (BERT): :func:`mlm_mask` corrupts, :func:`mlm_loss` scores;
- prefix language modelling (UniLM, T5's "prefix LM"): :func:`prefix_lm_mask`, a decoder's
  attention mask that is bidirectional over a prefix and causal after it;
- sequence to sequence (the Transformer, T5, BART): :func:`seq2seq_loss`;
- span corruption (T5): :func:`span_corrupt`; text infilling (BART): :func:`bart_infill`;
- knowledge distillation (soft targets at a temperature): :func:`soft_target_loss`,
  :func:`distillation_loss` (soft + hard), :func:`lm_distillation_loss` (a ``loss_fn`` that
  distils a teacher language model into a student, token by token).

Every loss has the signature ``loss_fn(model, inputs, targets)`` that
:func:`roadmap_lib.training.train` and :func:`~roadmap_lib.training.evaluate` call; targets are -100
where nothing is predicted (what ``cross_entropy(ignore_index=-100)`` skips).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import gelu


def lm_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy; ``model(inputs)`` gives logits (batch, seq, vocab)."""
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten(), ignore_index=-100)


def mlm_loss(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, pad_id: int = 0) -> torch.Tensor:
    """Masked-LM cross-entropy of a :class:`~roadmap_lib.models.bert.BertForMaskedLM` on the masked
    positions only (labels -100 elsewhere); ``pad_id`` positions are not attended to.

    Only the masked rows go through the output head (15 % of the work of scoring every position,
    the same loss).
    """
    h = model.bert(inputs, attention_mask=inputs != pad_id)[labels != -100]  # (n_masked, d_model)
    logits = model.mlm_out(model.mlm_norm(gelu(model.mlm_dense(h))))
    return F.cross_entropy(logits, labels[labels != -100])


def seq2seq_loss(model: nn.Module, inputs, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of an encoder-decoder: ``inputs = (src, src_padding_mask, tgt_in)``,
    ``model(src, tgt_in, src_padding_mask)`` gives logits (batch, T, vocab), ``targets`` (batch, T)."""
    src, mask, tgt_in = inputs
    logits = model(src, tgt_in, mask)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)


def prefix_lm_mask(prefix_lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    """The attention mask of a prefix LM: ``(batch, 1, seq_len, seq_len)`` boolean, True where query
    ``i`` may attend to key ``j``.

    Row ``b`` with prefix length ``P = prefix_lengths[b]``: ``mask[i, j] = (j <= i) or (j < P)``. So a
    prefix position (``i < P``) sees the whole prefix and nothing after it, and a target position
    (``i >= P``) sees the prefix and the targets up to itself, never ahead. ``P = 0`` is the plain
    causal mask, ``P = seq_len`` full bidirectional attention. Trained with next-token targets on
    the positions ``P - 1 .. seq_len - 2`` only (the prefix is given, not predicted).
    """
    if not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len: expected an int >= 1, got {seq_len!r}")
    p = torch.as_tensor(prefix_lengths)
    if p.ndim != 1 or p.is_floating_point() or p.dtype == torch.bool:
        raise ValueError(f"prefix_lengths: expected a (batch,) integer tensor, got shape {tuple(p.shape)}, {p.dtype}")
    if len(p) and (int(p.min()) < 0 or int(p.max()) > seq_len):
        raise ValueError(f"prefix_lengths: expected values in [0, seq_len={seq_len}], "
                         f"got min {int(p.min())}, max {int(p.max())}")
    i = torch.arange(seq_len, device=p.device)[:, None]
    j = torch.arange(seq_len, device=p.device)[None, :]
    return ((j <= i) | (j < p[:, None, None])).unsqueeze(1)


def mlm_mask(ids: torch.Tensor, *, vocab_size: int, mask_id: int, special_ids: tuple[int, ...] = (),
             p: float = 0.15, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: choose ``p`` of the (non-special) positions; of those, 80 % become
    ``mask_id``, 10 % a random token, 10 % stay. Returns ``(inputs, labels)``, labels -100 where
    nothing is predicted (what ``cross_entropy(ignore_index=-100)`` skips)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: expected a probability in (0, 1), got {p!r}")
    if ids.dtype != torch.long:
        raise ValueError(f"ids: expected an int64 tensor, got {ids.dtype}")
    special = torch.isin(ids, torch.tensor(list(special_ids), dtype=torch.long))
    chosen = (torch.rand(ids.shape, generator=generator) < p) & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    action = torch.rand(ids.shape, generator=generator)
    random_tokens = torch.randint(0, vocab_size, ids.shape, generator=generator)
    inputs = torch.where(chosen & (action < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_tokens, inputs)
    return inputs, labels


def span_corrupt(ids: list[int], *, sentinel_ids: list[int], noise_density: float = 0.15,
                 mean_span: float = 3.0, generator: torch.Generator | None = None) -> tuple[list[int], list[int]]:
    """T5's span corruption of one sequence: about ``noise_density`` of the tokens, in spans of
    mean length ``mean_span``, are replaced in the input by one sentinel each; the target lists
    each sentinel followed by the tokens it hides. E.g. ``a b c d e`` -> ``a <0> d e`` / ``<0> b c``.
    """
    n = len(ids)
    if n < 2:
        raise ValueError(f"ids: expected at least 2 tokens, got {n}")
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density: expected a fraction in (0, 1), got {noise_density!r}")
    n_noise = min(n - 1, max(1, round(n * noise_density)))  # at least one token hidden, one kept
    n_spans = max(1, min(round(n_noise / mean_span), n_noise, n - n_noise, len(sentinel_ids)))

    def split(total: int, parts: int) -> list[int]:  # random composition of total into parts >= 1
        cuts = torch.randperm(total - 1, generator=generator)[: parts - 1].add(1).sort().values.tolist()
        bounds = [0, *cuts, total]
        return [b - a for a, b in zip(bounds, bounds[1:])]

    noise_lengths = split(n_noise, n_spans)
    keep_lengths = split(n - n_noise + 1, n_spans + 1)  # +1 so the first kept run may be empty
    keep_lengths[0] -= 1
    inputs, targets, pos = [], [], 0
    for i in range(n_spans):
        inputs += ids[pos : pos + keep_lengths[i]]
        pos += keep_lengths[i]
        inputs.append(sentinel_ids[i])
        targets += [sentinel_ids[i], *ids[pos : pos + noise_lengths[i]]]
        pos += noise_lengths[i]
    inputs += ids[pos:]
    return inputs, targets


def bart_infill(ids: list[int], *, mask_id: int, mask_ratio: float = 0.3, poisson_lambda: float = 3.0,
                generator: torch.Generator | None = None) -> tuple[list[int], list[int]]:
    """BART text infilling of one sequence: ``(noisy input, target = ids)``.

    Spans with Poisson(``poisson_lambda``) lengths are masked until ``round(mask_ratio * n)`` words
    are hidden (at least one hidden, at least one kept); a length-0 span inserts a mask. Every run of
    hidden words becomes ONE ``mask_id`` (adjacent spans merge). E.g. ``a b c d e`` -> ``a <mask> e``.
    """
    n = len(ids)
    if n < 2:
        raise ValueError(f"ids: expected at least 2 tokens, got {n}")
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio: expected a fraction in (0, 1), got {mask_ratio!r}")
    if poisson_lambda <= 0:
        raise ValueError(f"poisson_lambda: expected a positive rate, got {poisson_lambda!r}")
    if mask_id in ids:
        raise ValueError(f"ids: must not contain mask_id={mask_id}")
    target = min(n - 1, max(1, round(n * mask_ratio)))
    hidden = [False] * n
    inserted = [False] * (n + 1)  # a mask inserted before word i
    n_hidden, rate = 0, torch.tensor([poisson_lambda])
    while n_hidden < target:
        length = int(torch.poisson(rate, generator=generator).item())
        start = int(torch.randint(n, (1,), generator=generator).item())
        if length == 0:
            inserted[start] = True
            continue
        for i in range(start, min(n, start + length)):
            if n_hidden < target and not hidden[i]:
                hidden[i], n_hidden = True, n_hidden + 1
    noisy = []
    for i in range(n + 1):
        if (inserted[i] or (i < n and hidden[i])) and (not noisy or noisy[-1] != mask_id):
            noisy.append(mask_id)
        if i < n and not hidden[i]:
            noisy.append(ids[i])
    return noisy, list(ids)


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                     T: float = 2.0) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over rows.

    Logits ``(..., classes)``; every leading dimension counts as rows (``(batch, seq, vocab)`` gives
    ``batch * seq`` rows). This is ``F.kl_div(log_softmax(s / T), log_softmax(t / T),
    log_target=True, reduction="batchmean")`` on the flattened rows: PyTorch's ``kl_div`` takes the
    *student's* log-probabilities first and the target second, and ``"batchmean"`` divides the sum
    by the number of rows (``"mean"`` would divide by rows x classes, which is not a KL).

    Why ``T^2``: the gradient of the KL with respect to a student logit is
    ``(p_s,T - p_t,T) / T``, and for large ``T`` the probabilities differ by about
    ``(z_s - z_t) / (classes * T)``, so the gradient shrinks like ``1 / T^2``; multiplying by ``T^2``
    keeps the soft term's gradients on one scale whatever the temperature (Hinton et al., 2015).
    """
    if not isinstance(T, (int, float)) or not math.isfinite(T) or T <= 0:
        raise ValueError(f"T: expected a positive finite temperature, got {T!r}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"teacher_logits: expected shape {tuple(student_logits.shape)}, "
                         f"got {tuple(teacher_logits.shape)}")
    if student_logits.dim() < 2:
        raise ValueError(f"student_logits: expected (..., classes) with at least 2 dims, "
                         f"got shape {tuple(student_logits.shape)}")
    s = student_logits.reshape(-1, student_logits.shape[-1])
    t = teacher_logits.reshape(-1, teacher_logits.shape[-1]).detach()
    return F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True,
                    reduction="batchmean") * T * T


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      T: float = 2.0, alpha: float = 0.5, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)``.

    Logits (n, classes) or (..., classes), labels of the leading shape, -100 ignored (in both
    terms); ``_T`` means softmax at temperature ``T`` (:func:`soft_target_loss`). The ``T^2`` keeps
    the soft term's gradients on the scale of the hard one (Hinton et al., 2015). ``weight`` are
    optional class weights of the hard term, as in ``F.cross_entropy``.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"teacher_logits: expected shape {tuple(student_logits.shape)}, "
                         f"got {tuple(teacher_logits.shape)}")
    if labels.shape != student_logits.shape[:-1]:
        raise ValueError(f"labels: expected shape {tuple(student_logits.shape[:-1])}, "
                         f"got {tuple(labels.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a weight in [0, 1], got {alpha!r}")
    keep = labels != -100
    s, t = student_logits[keep], teacher_logits[keep]
    return alpha * soft_target_loss(s, t, T) + (1 - alpha) * F.cross_entropy(s, labels[keep], weight=weight)


def lm_distillation_loss(teacher: nn.Module, *, T: float = 2.0, alpha: float = 0.5):
    """A ``loss_fn(model, inputs, targets)`` for :func:`roadmap_lib.training.train` that distils
    ``teacher`` (any model mapping ids (batch, seq) to logits (batch, seq, vocab) of the student's
    vocabulary) into the model being trained: :func:`distillation_loss` on every position, the
    teacher run without gradients. ``alpha=0`` is plain :func:`lm_loss`; ``alpha=1`` soft targets only.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a weight in [0, 1], got {alpha!r}")
    if not isinstance(T, (int, float)) or T <= 0:
        raise ValueError(f"T: expected a positive temperature, got {T!r}")

    def loss_fn(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        student = model(inputs)
        if alpha == 0.0:
            return F.cross_entropy(student.flatten(0, -2), targets.flatten(), ignore_index=-100)
        with torch.no_grad():
            teacher_logits = teacher(inputs).float()
        return distillation_loss(student, teacher_logits, targets, T=T, alpha=alpha)

    return loss_fn


__all__ = ["bart_infill", "distillation_loss", "lm_distillation_loss", "lm_loss", "mlm_loss", "mlm_mask", "prefix_lm_mask", "seq2seq_loss", "soft_target_loss", "span_corrupt"]
