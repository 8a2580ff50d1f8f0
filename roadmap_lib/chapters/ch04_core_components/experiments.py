"""Experiment drivers of chapter 04 (core components): what attention costs as the sequence grows,
why pre-norm trains where post-norm stalls, activations at equal parameter count, and a function
(parity) that a small transformer does not learn while a recurrent front end does.

Everything here is small enough to run on a laptop CPU in seconds; the chapter calls these
functions and plots what they return (plots in :mod:`roadmap_lib.chapters.ch04_core_components.plots`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from roadmap_lib.layers import BlockConfig, TransformerBlock, make_norm
from roadmap_lib.measure import cpu_threads, peak_memory, time_call

# --------------------------------------------------------------------------------------------
# What attention costs as the sequence grows
# --------------------------------------------------------------------------------------------


def attention_scaling(
    implementations: dict[str, Callable], lengths, *, batch: int = 1, heads: int = 4,
    head_dim: int = 32, repeats: int = 3, causal: bool = True, seed: int = 0, threads: int = 1,
) -> dict[str, dict[str, list[float]]]:
    """Time (s) and peak tensor memory (bytes) of each ``attention(q, k, v, is_causal=...)``.

    Timed on ``threads`` CPU threads (default one: the curve then shows the work done, not how
    well it parallelises, and other programs on the machine disturb it less).
    Returns ``{name: {"length": [...], "seconds": [...], "bytes": [...]}}``.
    """
    g = torch.Generator().manual_seed(seed)
    results = {name: {"length": [], "seconds": [], "bytes": []} for name in implementations}
    with cpu_threads(threads):
        for n in tqdm(list(lengths), desc="sequence length", leave=False):
            q, k, v = (torch.randn(batch, heads, n, head_dim, generator=g) for _ in range(3))
            for name, attn in implementations.items():
                def call(attn=attn, q=q, k=k, v=v):
                    return attn(q, k, v, is_causal=causal)

                results[name]["length"].append(n)
                results[name]["seconds"].append(time_call(call, repeats))
                results[name]["bytes"].append(peak_memory(call))
    return results


def offset_heads_attention(
    n: int = 12, heads: int = 4, sharpness: float = 4.0, mask: str = "causal", window: int = 4,
    pad: int = 0,
) -> torch.Tensor:
    """Attention weights (heads, n, n) of hand-built heads: head h prefers the token h steps back.

    Keys are one-hot positions and the query of position i in head h is the one-hot of i - h,
    scaled by ``sharpness``; so the scores are ``sharpness`` on one diagonal and 0 elsewhere, and
    the mask decides what is left. ``mask``: 'none', 'causal', 'sliding' (causal, ``window``
    keys) or 'padding' (the last ``pad`` keys are padding, no causal mask).
    """
    from roadmap_lib.attention import (
        padding_mask,
        scaled_dot_product_attention,
        sliding_window_mask,
    )

    # q[h] has a one at (i, i - h): its dot product with the one-hot key j is 1 exactly when
    # j = i - h. Scaled by `sharpness`, that diagonal stands out by `sharpness` in the scores.
    q = torch.stack([torch.diag(torch.ones(n - h), diagonal=-h) for h in range(heads)])[None]
    k = torch.eye(n).expand(1, heads, n, n)
    kwargs: dict = {}
    if mask == "causal":
        kwargs["is_causal"] = True
    elif mask == "sliding":
        kwargs["attn_mask"] = sliding_window_mask(n, window)
    elif mask == "padding":
        kwargs["key_padding_mask"] = padding_mask(torch.tensor([n - pad]), n)
    elif mask != "none":
        raise ValueError(f"mask: expected 'none', 'causal', 'sliding' or 'padding', got {mask!r}")
    _, weights = scaled_dot_product_attention(q, k, k, scale=sharpness, return_weights=True,
                                              **kwargs)
    return weights[0]


def hf_layer_max_diff(family: str, seq: int = 8, seed: int = 0) -> float:
    """Build one tiny transformers layer ('gpt2', 'bert' or 'llama') with random weights, load
    them into our TransformerBlock, run both on the same input; return the max abs difference."""
    import transformers
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    from roadmap_lib.attention import causal_mask
    from roadmap_lib.hf_layers import block_from_hf
    from roadmap_lib.rope import RoPEConfig, RotaryEmbedding

    torch.manual_seed(seed)
    small = {"hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64}
    if family == "gpt2":
        config = transformers.GPT2Config(n_embd=32, n_head=4, n_layer=1)
        make = lambda: transformers.models.gpt2.modeling_gpt2.GPT2Block(config, layer_idx=0)
    elif family == "bert":
        config = transformers.BertConfig(**small)
        make = lambda: transformers.models.bert.modeling_bert.BertLayer(config)
    elif family == "llama":
        config = transformers.LlamaConfig(**small, num_key_value_heads=2)
        make = lambda: transformers.models.llama.modeling_llama.LlamaDecoderLayer(config, 0)
    else:
        raise ValueError(f"family: expected 'gpt2', 'bert' or 'llama', got {family!r}")
    config._attn_implementation = "eager"
    theirs = make().eval()
    with torch.no_grad():  # random weights everywhere, norms included
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape) * 0.2 + (0.5 if p.ndim == 1 else 0.0))
    rotary = RotaryEmbedding(RoPEConfig(dim=8)) if family == "llama" else None
    ours = block_from_hf(theirs, config, rotary=rotary).eval()
    x = torch.randn(2, seq, 32)
    causal = family != "bert"
    allowed = causal_mask(seq) if causal else torch.ones(seq, seq, dtype=torch.bool)
    mask = torch.zeros(1, 1, seq, seq).masked_fill(~allowed, torch.finfo(torch.float32).min)
    kwargs = {}
    if family == "llama":
        kwargs["position_embeddings"] = LlamaRotaryEmbedding(config)(x, torch.arange(seq)[None])
    with torch.no_grad():
        ref = theirs(x, attention_mask=mask, **kwargs)
        ref = ref[0] if isinstance(ref, tuple) else ref
        return (ours(x) - ref).abs().max().item()


# --------------------------------------------------------------------------------------------
# A tiny character language model built from TransformerBlocks
# --------------------------------------------------------------------------------------------


class BlockStackLM(nn.Module):
    """Token + learned position embeddings, ``n_layers`` blocks, (final norm if pre-norm), head.

    Not :class:`roadmap_lib.models.GPT` on purpose: the experiments vary the block itself (pre- or
    post-norm, the activation, no biases) and keep PyTorch's default initialisation, so that what
    a post-norm stack does at a high learning rate is not hidden by GPT-2's small-init scheme.
    """

    def __init__(self, vocab_size: int, context: int, config: BlockConfig, n_layers: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab_size, config.d_model)
        self.pos = nn.Embedding(context, config.d_model)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(n_layers))
        # a post-norm stack already ends with a norm; a pre-norm stack needs one before the head
        self.norm = make_norm(config.norm, config.d_model, config.norm_eps, fused=config.fused_ops) \
            if config.prenorm else nn.Identity()
        self.head = nn.Linear(config.d_model, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def train_lm(
    model: nn.Module, get_batch, *, steps: int, lr: float, seed: int = 0, desc: str = "train",
    threads: int = 1,
) -> list[float]:
    """Plain Adam at a constant learning rate: no warm-up, no clipping. Returns the train losses.

    (The chapter wants to see what a high learning rate does from step one, so nothing here
    protects the model; :func:`roadmap_lib.training.train` is the careful loop.)
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    with cpu_threads(threads):
        for _ in tqdm(range(steps), desc=desc, leave=False):
            x, y = get_batch("train", gen)
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item() if math.isfinite(loss.item()) else float("nan"))
    return losses


def xavier_init_(model: nn.Module) -> nn.Module:
    """Xavier-normal weights and zero biases for every ``nn.Linear`` (the initialisation Xiong et
    al. (2020) analyse); embeddings and norms are left as they are. In place; returns ``model``."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def grad_norms_at_init(vocab_size: int, context: int, get_batch, *, prenorm: bool, n_layers: int,
                       seed: int, d_model: int = 32, n_heads: int = 4) -> list[float]:
    """Gradient norm of each block's second FFN matrix (``ffn.down_proj.weight``, Xiong et al.'s
    :math:`W^{2,l}`) at initialisation: one batch from ``get_batch("train", generator)``, the
    language-model loss, one backward pass. Returns one norm per block, bottom to top.

    The model is :class:`BlockStackLM` (d_ff = 4·d_model) with :func:`xavier_init_`; ``seed``
    draws the weights and the batch.
    """
    if n_layers < 1:
        raise ValueError(f"n_layers: expected at least 1 block, got {n_layers}")
    torch.manual_seed(seed)
    cfg = BlockConfig(d_model=d_model, n_heads=n_heads, d_ff=4 * d_model, causal=True, prenorm=prenorm)
    model = xavier_init_(BlockStackLM(vocab_size, context, cfg, n_layers))
    x, y = get_batch("train", torch.Generator().manual_seed(seed))
    with cpu_threads(1):
        F.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
    return [block.ffn.down_proj.weight.grad.norm().item() for block in model.blocks]


def ffn_width_for_params(d_model: int, d_ff: int, gated: bool) -> int:
    """Hidden width that gives a (bias-free) FFN the parameters of a plain one of width ``d_ff``.

    Plain: 2·d_model·d_ff weights; gated: 3·d_model·width, so width = 2·d_ff / 3.
    """
    return round(2 * d_ff / 3) if gated else d_ff


# --------------------------------------------------------------------------------------------
# Parity and majority: one function a transformer learns at once, one it does not
# --------------------------------------------------------------------------------------------


def bit_task_batch(task: str, n_bits: int, batch: int, generator: torch.Generator | None = None):
    """Random bit strings (batch, n_bits) and their labels.

    'parity': xor of all bits; 'majority': more ones than zeros (use an odd ``n_bits``);
    'adjacent': the string contains two neighbouring ones. For 'adjacent' a bit is 1 with
    probability 0.27, which makes the two labels about equally likely at ``n_bits=12``.
    """
    if task == "adjacent":
        bits = (torch.rand(batch, n_bits, generator=generator) < 0.27).long()
        return bits, (bits[:, 1:] * bits[:, :-1]).amax(1)
    bits = torch.randint(0, 2, (batch, n_bits), generator=generator)
    if task == "parity":
        return bits, bits.sum(1) % 2
    if task == "majority":
        return bits, (2 * bits.sum(1) > n_bits).long()
    raise ValueError(f"task: expected 'parity', 'majority' or 'adjacent', got {task!r}")


class BitClassifier(nn.Module):
    """Bits -> embeddings [+ positions] -> [front end] -> transformer blocks -> mean -> 2 logits.

    ``front='conv'`` (a CNN+Transformer hybrid) mixes each bit with its neighbours before
    attention; ``front='gru'`` (an RNN+Transformer hybrid) runs a GRU over the bits first, so each
    position carries a summary of everything before it.
    Without positions and without a front end the model only sees the multiset of bits.
    ``attention_backend`` and ``fused_ops`` go to the blocks' :class:`BlockConfig` ("sdpa" and
    fused norms/activations compute the same function as the written-out "math" path, faster).
    """

    def __init__(self, n_bits: int, d_model: int = 32, n_layers: int = 2, n_heads: int = 4,
                 front: str | None = None, positions: bool = True, attention_backend: str = "math",
                 fused_ops: bool = False) -> None:
        super().__init__()
        if front not in (None, "conv", "gru"):
            raise ValueError(f"front: expected None, 'conv' or 'gru', got {front!r}")
        self.embed = nn.Embedding(2, d_model)
        self.pos = nn.Embedding(n_bits, d_model) if positions else None
        self.conv = nn.Conv1d(d_model, d_model, kernel_size=3, padding=1) if front == "conv" else None
        self.gru = nn.GRU(d_model, d_model, batch_first=True) if front == "gru" else None
        cfg = BlockConfig(d_model=d_model, n_heads=n_heads, d_ff=2 * d_model,
                          attention_backend=attention_backend, fused_ops=fused_ops)
        self.blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(n_layers))
        self.head = nn.Linear(d_model, 2)

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        x = self.embed(bits)
        if self.pos is not None:
            x = x + self.pos(torch.arange(bits.shape[1], device=bits.device))
        if self.conv is not None:  # Conv1d wants (batch, channels, length)
            x = x + torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        if self.gru is not None:
            x = x + self.gru(x)[0]
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(1))


class BitGRU(nn.Module):
    """The recurrent baseline: bits -> embeddings -> one GRU layer -> its last state -> 2 logits.

    One bit of state suffices to compute parity exactly, so the GRU *can* represent it; whether
    gradient descent finds that solution is the experiment.
    """

    def __init__(self, d_model: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(2, d_model)
        self.rnn = nn.GRU(d_model, d_model, batch_first=True)
        self.head = nn.Linear(d_model, 2)

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(bits))[0][:, -1])


def train_bit_task(
    model: nn.Module, task: str, n_bits: int, *, steps: int = 300, batch: int = 64,
    lr: float = 3e-3, seed: int = 0, test_size: int = 1000, threads: int = 1,
) -> dict[str, list[float] | float]:
    """Train on fresh random strings each step; return losses and accuracy on held-out strings."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    with cpu_threads(threads):
        for _ in tqdm(range(steps), desc=task, leave=False):
            x, y = bit_task_batch(task, n_bits, batch, gen)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        x, y = bit_task_batch(task, n_bits, test_size, torch.Generator().manual_seed(seed + 1))
        with torch.no_grad():
            accuracy = (model(x).argmax(-1) == y).float().mean().item()
    return {"loss": losses, "accuracy": accuracy}


__all__ = [
    "BitClassifier",
    "BlockStackLM",
    "attention_scaling",
    "bit_task_batch",
    "ffn_width_for_params",
    "grad_norms_at_init",
    "hf_layer_max_diff",
    "offset_heads_attention",
    "train_bit_task",
    "train_lm",
    "xavier_init_",
]
