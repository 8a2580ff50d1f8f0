"""Chapter 12's model family: one small pre-norm language model whose sequence mixer is swapped.

Every model is ``token + shifted previous token + position embeddings → n_layers × [x + mixer(norm x); x + ffn(norm x)] →
norm → tied output``; only the mixer (and, for the MoE pair, the feed-forward) changes:

==========  ===================================================================================
mixer       what mixes the sequence
==========  ===================================================================================
dense       causal softmax attention (PyTorch's ``scaled_dot_product_attention``)
window      block-sparse sliding window (:mod:`roadmap_lib.efficient.sparse`)
bigbird     window + global tokens + random blocks, block-sparse
linear      causal linear attention, ``elu + 1`` features (:mod:`roadmap_lib.efficient.linear`)
s4d         gated S4D: ``out(S4D(u) · silu(gate))`` (:mod:`roadmap_lib.efficient.ssm`)
mamba       the Mamba mixer (selective scan), ``expand = 1`` (:mod:`roadmap_lib.efficient.mamba`)
==========  ===================================================================================

The shift (a linear map of token ``t-1``'s embedding added at ``t``, like RWKV's token shift and
H3's shift SSM) lets one layer of any mixer pair a key with the value that follows it, so that the
recall probe measures how far each mixer can *retrieve*, not whether a two-layer induction circuit
formed in a few hundred steps.

``ffn="swiglu"`` is a dense SwiGLU feed-forward of width ``d_ff``; ``ffn="moe"`` is a
:class:`~roadmap_lib.efficient.moe.SparseMoE` of ``n_experts`` such experts with top-``k``
routing: at ``k = 1`` it has exactly the dense model's *active* parameters per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from roadmap_lib.efficient.linear import linear_attention
from roadmap_lib.efficient.mamba import MambaConfig, MambaMixer
from roadmap_lib.efficient.moe import SparseMoE, load_balancing_loss, router_z_loss
from roadmap_lib.efficient.sparse import SparsePattern, block_sparse_attention
from roadmap_lib.efficient.ssm import S4D
from roadmap_lib.layers import FeedForward, RMSNorm

MIXERS = ("dense", "window", "bigbird", "linear", "s4d", "mamba")


@dataclass
class TinyConfig:
    vocab_size: int = 96
    context: int = 128
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 176
    mixer: str = "dense"
    ffn: str = "swiglu"  # or "moe"
    window: int = 32  # window and bigbird
    block: int = 16  # block-sparse granularity
    n_global: int = 16  # bigbird
    n_random: int = 1  # bigbird, random key blocks per query block
    d_state: int = 16  # s4d and mamba
    n_experts: int = 4
    top_k: int = 1

    def __post_init__(self) -> None:
        if self.mixer not in MIXERS:
            raise ValueError(f"mixer: expected one of {MIXERS}, got {self.mixer!r}")
        if self.ffn not in ("swiglu", "moe"):
            raise ValueError(f"ffn: expected 'swiglu' or 'moe', got {self.ffn!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads: {self.n_heads} does not divide d_model={self.d_model}")


class AttentionMixer(nn.Module):
    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        if cfg.mixer == "window":
            self.pattern = SparsePattern("window", window=cfg.window, block=cfg.block)
        elif cfg.mixer == "bigbird":
            self.pattern = SparsePattern("bigbird", window=cfg.window, block=cfg.block, n_global=cfg.n_global,
                                         n_random=cfg.n_random)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, L, d = x.shape
        q, k, v = self.qkv(x).view(b, L, 3, self.cfg.n_heads, d // self.cfg.n_heads).permute(2, 0, 3, 1, 4)
        if self.cfg.mixer == "dense":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif self.cfg.mixer == "linear":
            y = linear_attention(q, k, v, causal=True)
        else:
            y = block_sparse_attention(q, k, v, self.pattern)
        return self.out(y.transpose(1, 2).reshape(b, L, d))


class S4DMixer(nn.Module):
    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.in_proj = nn.Linear(cfg.d_model, 2 * cfg.d_model, bias=False)
        self.ssm = S4D(cfg.d_model, state=cfg.d_state)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, gate = self.in_proj(x).chunk(2, dim=-1)
        return self.out(self.ssm(u) * F.silu(gate))


def make_mixer(cfg: TinyConfig) -> nn.Module:
    if cfg.mixer == "s4d":
        return S4DMixer(cfg)
    if cfg.mixer == "mamba":
        return MambaMixer(MambaConfig(vocab_size=cfg.vocab_size, d_model=cfg.d_model, n_layers=1,
                                      d_state=cfg.d_state, expand=1, scan="sequential"))
    return AttentionMixer(cfg)


class Block(nn.Module):
    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(cfg.d_model, 1e-5), RMSNorm(cfg.d_model, 1e-5)
        self.mixer = make_mixer(cfg)
        if cfg.ffn == "moe":
            self.ffn = SparseMoE(cfg.d_model, cfg.d_ff, cfg.n_experts, cfg.top_k)
        else:
            self.ffn = FeedForward(cfg.d_model, cfg.d_ff, activation="swiglu", bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class TinyLM(nn.Module):
    """``idx (batch, L)`` → logits ``(batch, L, vocab_size)``, ``L <= context``."""

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        self.shift = nn.Linear(cfg.d_model, cfg.d_model, bias=False)  # the previous token, mixed in
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, 1e-5)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.ndim != 2 or idx.shape[1] > self.cfg.context:
            raise ValueError(f"idx: expected (batch, L) with L <= {self.cfg.context}, got {tuple(idx.shape)}")
        e = self.tok(idx)
        prev = F.pad(e, (0, 0, 1, 0))[:, :-1]  # token t-1's embedding at position t (zeros at t = 0)
        h = e + self.shift(prev) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            h = block(h)
        return self.norm(h) @ self.tok.weight.T

    def moe_layers(self) -> list[SparseMoE]:
        return [b.ffn for b in self.blocks if isinstance(b.ffn, SparseMoE)]

    def aux_loss(self, balance: float = 0.01, z: float = 1e-3) -> torch.Tensor:
        """Switch load-balancing loss and router z-loss of the last forward pass, summed over the MoE
        layers (0 for a dense model)."""
        out = torch.zeros(())
        for moe in self.moe_layers():
            out = out + balance * load_balancing_loss(moe.router_logits, moe.k) + z * router_z_loss(moe.router_logits)
        return out

    def active_parameters(self) -> int:
        """Parameters one token uses: all, minus the experts it is not routed to."""
        total = sum(p.numel() for p in self.parameters())
        for moe in self.moe_layers():
            per_expert = (moe.experts.gate_up_proj.numel() + moe.experts.down_proj.numel()) // moe.n_experts
            total -= (moe.n_experts - moe.k) * per_expert
        return total


__all__ = ["MIXERS", "AttentionMixer", "Block", "S4DMixer", "TinyConfig", "TinyLM", "make_mixer"]
