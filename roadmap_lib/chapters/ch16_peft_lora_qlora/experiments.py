"""Chapter 16's experiment: adapt the character-level GPT of chapter 07 (``gpt-char-jargon``,
trained on English prose from the Jargon File) to *Zetan*, the invented language of the
translation task (``data/tasks/translation``, column ``tgt``), with each fine-tuning method.

Every method starts from the same shipped weights and trains on the same batches (seeded) for the
same number of steps with AdamW; what differs is which parameters train and the learning rate
(see :data:`METHODS`). Quality is the
validation loss in nats per character on held-out Zetan text, on fixed batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from roadmap_lib.data import CharLMData, load_task
from roadmap_lib.measure import PeakTensorMemory, count_parameters, cpu_threads
from roadmap_lib.optim import AdamW, AdamW8bit
from roadmap_lib.peft import LoRAConfig, PromptTuning, apply_ia3, apply_lora
from roadmap_lib.peft.qlora import apply_qlora
from roadmap_lib.quantization import model_nbytes
from roadmap_lib.training import TrainConfig, evaluate, train
from roadmap_lib.zoo import load_char_gpt

CONTEXT = 32  # characters per training window (prompt tuning adds its virtual tokens in front)
BATCH = 8
STEPS = 200
EVAL_BATCHES = 25
EVAL_SEED = 1234
SEEDS = (0, 1, 2)
QV = ("q_proj", "v_proj")
ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Method:
    """One way to fine-tune: ``kind`` in full / lora / dora / qlora / prompt / ia3."""

    name: str
    kind: str
    lr: float
    r: int = 0
    targets: tuple[str, ...] = ()
    n_virtual: int = 0
    extra: dict = field(default_factory=dict)


#: LoRA's scale is rsLoRA's α/√r (Kalajdzievski 2023) with α = 4: 2 at r = 4, the rank the
#: learning rate was picked on, and 4, 1 at r = 1, 16. A first build with a constant scale of 2
#: (α = 2r) left r = 16 stuck on a plateau from step 20 on at this learning rate: its B A sums four
#: times more rank-one terms than at r = 4, so the same step moves the weights further.
LORA_ALPHA = 4.0

#: Learning rates: one per family, picked on seed 0 after 100 steps from the grid 3e-4, 1e-3, 3e-3,
#: 1e-2, 3e-2, 1e-1, 3e-1 (full fine-tuning, LoRA r=4 on q/v, prompt tuning and IA³ each tried on
#: the values around its best); the LoRA value serves every rank, target set, DoRA and QLoRA.
METHODS = {m.name: m for m in [
    Method("full", "full", 3e-3),
    Method("lora r=1 qv", "lora", 3e-2, 1, QV),
    Method("lora r=4 qv", "lora", 3e-2, 4, QV),
    Method("lora r=16 qv", "lora", 3e-2, 16, QV),
    Method("lora r=1 all", "lora", 3e-2, 1, ALL),
    Method("lora r=4 all", "lora", 3e-2, 4, ALL),
    Method("lora r=16 all", "lora", 3e-2, 16, ALL),
    Method("dora r=4 qv", "dora", 3e-2, 4, QV),
    Method("qlora r=4 qv", "qlora", 3e-2, 4, QV),
    Method("prompt n=16", "prompt", 1e-1, n_virtual=16),
    Method("ia3", "ia3", 3e-1, targets=("k_proj", "v_proj", "down_proj")),
]}


def zetan_data(vocab) -> CharLMData:
    """Zetan sentences of the translation task's train split, one per line; the last 10 % of the
    text is the validation split."""
    text = "\n".join(row["tgt"] for row in load_task("translation", "train"))
    return CharLMData(text, context=CONTEXT, batch_size=BATCH, vocab=vocab)


def prepare(method: Method | str, seed: int = 0) -> tuple[nn.Module, Callable]:
    """``(model, loss_fn)``: the shipped char GPT with ``method`` applied (adapter weights drawn
    from ``seed``), and the next-character loss for it (prompt tuning drops the virtual
    positions' outputs)."""
    method = METHODS[method] if isinstance(method, str) else method
    if method.kind not in ("full", "lora", "dora", "qlora", "prompt", "ia3"):
        raise ValueError(f"method.kind: expected full/lora/dora/qlora/prompt/ia3, got {method.kind!r}")
    model, _, _ = load_char_gpt()
    torch.manual_seed(seed)
    n = 0
    if method.kind in ("lora", "dora"):
        apply_lora(model, LoRAConfig(list(method.targets), r=method.r, alpha=LORA_ALPHA,
                                     use_rslora=True, use_dora=method.kind == "dora"))
    elif method.kind == "qlora":
        apply_qlora(model, LoRAConfig(list(method.targets), r=method.r, alpha=LORA_ALPHA,
                                      use_rslora=True))
    elif method.kind == "ia3":
        apply_ia3(model, list(method.targets), ["down_proj"])
    elif method.kind == "prompt":
        n = method.n_virtual
        model = PromptTuning(model, n, generator=torch.Generator().manual_seed(seed))

    def loss_fn(m, x, y):
        logits = m(x)[:, n:]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    return model, loss_fn


def val_loss(model: nn.Module, loss_fn, data: CharLMData) -> float:
    """Mean loss on the same :data:`EVAL_BATCHES` validation batches for every model."""
    return evaluate(model, data.get_batch, loss_fn, batches=EVAL_BATCHES, seed=EVAL_SEED)


def finetune(method: Method | str, seed: int = 0, steps: int = STEPS):
    """Fine-tune one method with one seed (one thread). Returns ``(model, loss_fn, data, record)``;
    the record holds the trainable parameters, the validation loss after training, seconds per step
    and the training losses."""
    method = METHODS[method] if isinstance(method, str) else method
    with cpu_threads(1):
        model, loss_fn = prepare(method, seed)
        data = zetan_data(load_char_gpt()[1])
        trainable = count_parameters(model, trainable_only=True)
        cfg = TrainConfig(max_steps=steps, lr=method.lr, warmup_steps=steps // 10, weight_decay=0.0,
                          eval_interval=steps, eval_batches=1, seed=seed, progress=False)
        result = train(model, data.get_batch, cfg, loss_fn=loss_fn)
        final = val_loss(model, loss_fn, data)
    record = {"method": method.name, "seed": seed, "steps": steps, "trainable": trainable,
              "val_loss": final, "seconds_per_step": (result.seconds - result.eval_seconds) / steps,
              "train_loss": [round(r["loss"], 4) for r in result.log]}
    return model, loss_fn, data, record


def run_one(method: Method | str, seed: int = 0, steps: int = STEPS) -> dict:
    """The record of :func:`finetune` (the model is dropped)."""
    return finetune(method, seed, steps)[3]


def base_val_loss() -> float:
    """The shipped model's validation loss on Zetan before any fine-tuning."""
    with cpu_threads(1):
        model, loss_fn = prepare("full")
        return val_loss(model, loss_fn, zetan_data(load_char_gpt()[1]))


# ------------------------------------------------------------------------------------ memory


class Checkpointed(nn.Module):
    """A transformer block whose activations are recomputed in the backward pass instead of kept
    (gradient checkpointing, Chen et al. 2016): ``torch.utils.checkpoint`` around the block."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        if cache is not None or not torch.is_grad_enabled():
            return self.block(x, cache=cache)
        return checkpoint(self.block, x, use_reentrant=False)


def use_checkpointing(model: nn.Module) -> nn.Module:
    """Wrap every block of the GPT inside ``model`` (a prompt-tuned one too) in :class:`Checkpointed`."""
    gpt = getattr(model, "model", model)
    gpt.blocks = nn.ModuleList(Checkpointed(b) for b in gpt.blocks)
    return model


def step_memory(method: Method | str, *, checkpointing: bool = False, bf16: bool = False,
                optimizer: str = "adamw", batch: int = 32, context: int = CONTEXT,
                seed: int = 0) -> dict:
    """Peak bytes of tensors created by one training step (forward, backward and the first
    optimiser step, which creates its state) of ``method`` on a ``(batch, context)`` batch,
    measured with :class:`~roadmap_lib.measure.PeakTensorMemory`; plus the bytes of the weights
    (which exist before the step) and of the optimiser state after it.

    ``bf16``: the forward and backward run under ``torch.autocast`` in bfloat16 (weights and
    optimiser stay float32). ``optimizer``: ``"adamw"`` (float32 moments) or ``"adamw8bit"``.
    """
    if optimizer not in ("adamw", "adamw8bit"):
        raise ValueError(f"optimizer: expected 'adamw' or 'adamw8bit', got {optimizer!r}")
    with cpu_threads(1):
        model, loss_fn = prepare(method, seed)
        if checkpointing:
            use_checkpointing(model)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = (AdamW if optimizer == "adamw" else AdamW8bit)(params, lr=1e-3, weight_decay=0.0)
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, model_vocab_size(model), (batch, context), generator=g)
        model.train()
        with PeakTensorMemory() as mode:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model, x, x)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        state = sum(t.untyped_storage().nbytes() for s in opt.state.values() for t in s.values()
                    if isinstance(t, torch.Tensor))
    return {"peak_step_bytes": mode.peak, "weight_bytes": model_nbytes(model),
            "optimizer_state_bytes": state}


def model_vocab_size(model: nn.Module) -> int:
    gpt = getattr(model, "model", model)
    return gpt.config.vocab_size


def time_per_step(method: Method | str, steps: int = 10, seed: int = 0) -> float:
    """Median seconds of one training step (forward, backward, AdamW) on a (BATCH, CONTEXT) batch."""
    with cpu_threads(1):
        model, loss_fn = prepare(method, seed)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = AdamW(params, lr=1e-4, weight_decay=0.0)
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, model_vocab_size(model), (BATCH, CONTEXT), generator=g)
        times = []
        for _ in range(steps + 1):
            start = time.perf_counter()
            loss_fn(model, x, x).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
    return sorted(times[1:])[steps // 2]


__all__ = [
    "ALL", "BATCH", "CONTEXT", "EVAL_BATCHES", "LORA_ALPHA", "METHODS", "QV", "SEEDS", "STEPS", "Checkpointed",
    "Method", "base_val_loss", "finetune", "prepare", "run_one", "step_memory", "time_per_step",
    "use_checkpointing", "val_loss", "zetan_data",
]
