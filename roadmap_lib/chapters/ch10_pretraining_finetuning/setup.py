"""The training setup of chapter 10, each piece measured: optimiser state, gradient accumulation,
packing, bf16 autocast on CPU, activation checkpointing.

Everything runs on the zoo's character-level GPT of chapter 07 (or a fresh small GPT of the same
shape) and on Jargon File sentences as documents.
"""

from __future__ import annotations

import copy
import random

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from roadmap_lib.data import CharLMData, load_text
from roadmap_lib.measure import PeakTensorMemory
from roadmap_lib.models.gpt import GPT, GPTConfig
from roadmap_lib.optim import Adafactor, AdamW, AdamW8bit, optimizer_state_nbytes
from roadmap_lib.packing import packed_lm_loss, pad_documents
from roadmap_lib.tasks import corpus_sentences

# --- documents ---------------------------------------------------------------------------------


def jargon_documents(n: int, max_chars: int = 64, seed: int = 0) -> list[str]:
    """``n`` Jargon File sentences of at most ``max_chars`` characters, a seeded random sample."""
    pool = [s for s in corpus_sentences(load_text(), min_words=2, max_words=40) if len(s) <= max_chars]
    if n > len(pool):
        raise ValueError(f"n: expected at most {len(pool)} (sentences of <= {max_chars} chars), got {n}")
    return random.Random(seed).sample(pool, n)


def encode_documents(vocab, docs: list[str]) -> list[list[int]]:
    return [vocab.encode(d).tolist() for d in docs]


# --- gradient accumulation ----------------------------------------------------------------------


def gradients(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


def full_batch_gradients(model: nn.Module, docs: list[list[int]], seq_len: int) -> list[torch.Tensor]:
    """Gradients of the mean next-token loss over every real target of all ``docs`` at once."""
    model.zero_grad(set_to_none=True)
    packed_lm_loss(model, pad_documents(docs, seq_len=seq_len)).backward()
    return gradients(model)


def split_micro_batches(docs: list, k: int) -> list[list]:
    """``k`` consecutive, equally many documents each (their token counts differ)."""
    if not isinstance(k, int) or k < 1 or len(docs) % k:
        raise ValueError(f"k: expected a divisor of the {len(docs)} documents, got {k!r}")
    size = len(docs) // k
    return [docs[i * size:(i + 1) * size] for i in range(k)]


def accumulated_gradients(model: nn.Module, docs: list[list[int]], k: int, seq_len: int,
                          normalize: str = "tokens") -> list[torch.Tensor]:
    """Gradients accumulated over ``k`` micro-batches of ``docs``.

    ``normalize="tokens"``: each micro-batch adds its *summed* loss divided by the number of real
    targets in the whole batch (known before the first backward). ``"mean"``: each adds its own
    mean loss divided by ``k``, the common shortcut that weights a token of a short micro-batch more
    than a token of a long one.
    """
    if normalize not in ("tokens", "mean"):
        raise ValueError(f"normalize: expected 'tokens' or 'mean', got {normalize!r}")
    micro = [pad_documents(m, seq_len=seq_len) for m in split_micro_batches(docs, k)]
    total = sum(b.n_targets for b in micro)
    model.zero_grad(set_to_none=True)
    for b in micro:
        loss = (packed_lm_loss(model, b, "sum") / total if normalize == "tokens"
                else packed_lm_loss(model, b) / k)
        loss.backward()
    return gradients(model)


def max_relative_difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """``max |a - b| / max |b|`` over all tensors."""
    return max(float((x - y).abs().max()) for x, y in zip(a, b)) / max(float(y.abs().max()) for y in b)


# --- optimiser state ----------------------------------------------------------------------------


OPTIMIZERS = {
    "AdamW (fp32 moments)": lambda ps: AdamW(ps, lr=1e-3),
    "AdamW 8-bit moments": lambda ps: AdamW8bit(ps, lr=1e-3),
    "Adafactor + first moment": lambda ps: Adafactor(ps, beta1=0.9),
    "Adafactor (paper default)": lambda ps: Adafactor(ps),
}


def optimizer_state_bytes(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, int]:
    """Bytes of optimiser state after one step of each optimiser on a copy of ``model``."""
    out = {}
    for name, make in OPTIMIZERS.items():
        m = copy.deepcopy(model).train()
        opt = make(m.parameters())
        F.cross_entropy(m(batch[0]).flatten(0, 1), batch[1].flatten()).backward()
        opt.step()
        out[name] = optimizer_state_nbytes(opt)
    return out


# --- bf16 autocast on CPU -----------------------------------------------------------------------


def small_gpt(vocab_size: int, seed: int = 0, **overrides) -> GPT:
    cfg = {"vocab_size": vocab_size, "context_length": 64, "d_model": 64, "n_layers": 2, "n_heads": 4,
           "attention_backend": "sdpa"}
    torch.manual_seed(seed)
    return GPT(GPTConfig(**(cfg | overrides)))


def autocast_dtypes(model: nn.Module, ids: torch.Tensor) -> dict[str, str]:
    """The dtype each kind of module outputs in a forward pass under CPU bf16 autocast."""
    seen: dict[str, str] = {}

    def record(mod, inputs, output) -> None:  # a hook that returns None leaves the output alone
        seen.setdefault(type(mod).__name__, str(output.dtype))

    hooks = [m.register_forward_hook(record)
             for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding)) or "Norm" in type(m).__name__]
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(ids)
            loss = F.cross_entropy(logits.flatten(0, 1), ids.flatten())
    finally:
        for h in hooks:
            h.remove()
    seen["logits"], seen["cross_entropy"] = str(logits.dtype), str(loss.dtype)
    seen["parameters"] = str(next(model.parameters()).dtype)
    return seen


def train_curve(precision: str, *, steps: int = 150, seed: int = 0, lr: float = 3e-3, batch_size: int = 16) -> list[float]:
    """Training losses of a fresh small char GPT, in ``"fp32"`` or under ``"bf16"`` autocast
    (weights, gradients and optimiser stay float32 either way)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision: expected 'fp32' or 'bf16', got {precision!r}")
    data = CharLMData(context=64, batch_size=batch_size)
    model = small_gpt(len(data.vocab), seed)
    opt = AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed + 1)
    losses = []
    for _ in range(steps):
        x, y = data.get_batch("train", g)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


# --- activation checkpointing -------------------------------------------------------------------


def gpt_logits(model: GPT, ids: torch.Tensor, use_checkpoint: bool = False) -> torch.Tensor:
    """GPT's forward; with ``use_checkpoint`` each block keeps only its input for the backward pass
    and recomputes its activations then (``torch.utils.checkpoint``)."""
    x = model.drop(model.wte(ids) + model.wpe(torch.arange(ids.shape[1])))
    for block in model.blocks:
        x = checkpoint(block, x, use_reentrant=False) if use_checkpoint else block(x)
    return model.lm_head(model.ln_f(x))


def training_step_memory(model: GPT, ids: torch.Tensor, targets: torch.Tensor,
                         use_checkpoint: bool) -> tuple[int, int, list[torch.Tensor]]:
    """``(peak bytes of tensors during forward + backward, bytes alive after the forward, gradients)``."""
    model.zero_grad(set_to_none=True)
    with PeakTensorMemory() as mode:
        loss = F.cross_entropy(gpt_logits(model, ids, use_checkpoint).flatten(0, 1), targets.flatten())
        after_forward = sum(n for _, n in mode.live.values())
        loss.backward()
    return mode.peak, after_forward, gradients(model)
