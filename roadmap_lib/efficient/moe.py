"""Mixture of experts: top-k routing, capacity, auxiliary losses and a sparse MoE block.

A router (one linear layer) scores each token against ``E`` experts; the token goes to its
``k`` best, and the block's output is their outputs weighted by the renormalised router
probabilities (Shazeer et al. 2017; Mixtral's convention). Each token runs ``k`` experts, so the
*active* parameters per token are ``k / E`` of the experts' total.

- **Capacity** (Switch, GShard): an expert processes at most
  ``ceil(capacity_factor · k · T / E)`` of ``T`` tokens; the overflow is *dropped* (it passes
  through the residual unchanged). First choices are served before second choices, each in token
  order.
- **Load-balancing loss** (Switch, Fedus et al. 2022): ``E · Σ_i f_i P_i`` with ``f_i`` the fraction
  of routed (token, slot) pairs that chose expert ``i`` and ``P_i`` its mean router probability;
  equal to transformers' ``load_balancing_loss_func``.
- **Router z-loss** (ST-MoE, Zoph et al. 2022): the mean squared log-sum-exp of the router logits,
  which keeps them small.

:class:`SparseMoE` stores its weights in transformers' Mixtral layout (``gate.weight``,
``experts.gate_up_proj``, ``experts.down_proj``), so a ``MixtralSparseMoeBlock``'s state dict loads
into it as is, and back.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def top_k_route(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights, experts)``, both ``(T, k)``: the ``k`` largest softmax probabilities of
    ``logits (T, E)``, renormalised to sum to 1 per token, and their expert ids."""
    if logits.ndim != 2:
        raise ValueError(f"logits: expected (tokens, experts), got shape {tuple(logits.shape)}")
    E = logits.shape[1]
    if not isinstance(k, int) or not 1 <= k <= E:
        raise ValueError(f"k: expected an int in [1, {E}] (the number of experts), got {k!r}")
    probs = torch.softmax(logits.float(), dim=-1)
    top, idx = torch.topk(probs, k, dim=-1)
    return top / top.sum(-1, keepdim=True), idx


def expert_capacity(tokens: int, n_experts: int, k: int, capacity_factor: float) -> int:
    """Slots per expert: ``ceil(capacity_factor · k · tokens / n_experts)``."""
    if capacity_factor <= 0:
        raise ValueError(f"capacity_factor: expected a positive number, got {capacity_factor!r}")
    return math.ceil(capacity_factor * k * tokens / n_experts)


def capacity_keep(experts: torch.Tensor, n_experts: int, capacity: int) -> torch.Tensor:
    """``(T, k)`` boolean: which (token, slot) assignments fit in their expert's ``capacity``.
    Slot 0 of every token is served before slot 1, each in token order."""
    T, k = experts.shape
    order = experts.T.reshape(-1)  # slot-major: all first choices, then all second choices
    onehot = F.one_hot(order, n_experts)
    position = (torch.cumsum(onehot, dim=0) - 1)[torch.arange(T * k), order]  # place in its expert's queue
    return (position < capacity).reshape(k, T).T


def expert_utilisation(experts: torch.Tensor, n_experts: int, keep: torch.Tensor | None = None) -> torch.Tensor:
    """``(n_experts,)`` fraction of the routed (token, slot) pairs each expert processed."""
    flat = experts.reshape(-1) if keep is None else experts[keep]
    counts = torch.bincount(flat, minlength=n_experts).float()
    return counts / max(experts.numel(), 1)


def load_balancing_loss(router_logits: torch.Tensor, k: int) -> torch.Tensor:
    """Switch load-balancing loss for ``router_logits (T, E)`` (1 when perfectly balanced, up to
    ``E`` when one expert takes everything); transformers' convention (``f_i`` sums to ``k``)."""
    if router_logits.ndim != 2:
        raise ValueError(f"router_logits: expected (tokens, experts), got {tuple(router_logits.shape)}")
    E = router_logits.shape[1]
    probs = torch.softmax(router_logits.float(), dim=-1)
    if not isinstance(k, int) or not 1 <= k <= E:
        raise ValueError(f"k: expected an int in [1, {E}] (the number of experts), got {k!r}")
    _, idx = torch.topk(probs, k, dim=-1)
    f = F.one_hot(idx, E).float().sum(1).mean(0)  # (E,), sums to k
    P = probs.mean(0)
    return E * (f * P).sum()


def router_z_loss(router_logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE's z-loss: ``mean(logsumexp(logits)²)`` over tokens."""
    return torch.logsumexp(router_logits.float(), dim=-1).pow(2).mean()


class _Experts(nn.Module):
    def __init__(self, n_experts: int, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.randn(n_experts, 2 * d_ff, d_model) * d_model**-0.5)
        self.down_proj = nn.Parameter(torch.randn(n_experts, d_model, d_ff) * d_ff**-0.5)

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        gate, up = F.linear(x, self.gate_up_proj[e]).chunk(2, dim=-1)
        return F.linear(F.silu(gate) * up, self.down_proj[e])  # SwiGLU


class SparseMoE(nn.Module):
    """Top-``k`` of ``n_experts`` SwiGLU experts of width ``d_ff``.

    forward: ``x (batch, L, d_model)`` → ``(batch, L, d_model)``. After each call,
    ``self.router_logits (T, E)``, ``self.experts_chosen (T, k)`` and ``self.kept (T, k)`` hold the
    routing (for the auxiliary losses and utilisation). ``capacity_factor=None`` drops nothing
    (transformers' Mixtral); a number drops what overflows.
    """

    def __init__(self, d_model: int, d_ff: int, n_experts: int, k: int = 2,
                 capacity_factor: float | None = None) -> None:
        super().__init__()
        if not isinstance(k, int) or not 1 <= k <= n_experts:
            raise ValueError(f"k: expected an int in [1, {n_experts}] (the number of experts), got {k!r}")
        self.k, self.n_experts, self.capacity_factor = k, n_experts, capacity_factor
        self.gate = nn.Linear(d_model, n_experts, bias=False)
        self.experts = _Experts(n_experts, d_model, d_ff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3:
            raise ValueError(f"x: expected (batch, L, d_model), got shape {tuple(x.shape)}")
        shape = x.shape
        h = x.reshape(-1, shape[-1])
        logits = self.gate(h)
        weights, chosen = top_k_route(logits, self.k)
        keep = torch.ones_like(chosen, dtype=torch.bool)
        if self.capacity_factor is not None:
            cap = expert_capacity(h.shape[0], self.n_experts, self.k, self.capacity_factor)
            keep = capacity_keep(chosen, self.n_experts, cap)
        self.router_logits, self.experts_chosen, self.kept = logits, chosen, keep
        out = torch.zeros_like(h)
        for e in range(self.n_experts):
            token, slot = torch.where((chosen == e) & keep)
            if len(token):
                y = self.experts.expert(e, h[token]) * weights[token, slot, None]
                out.index_add_(0, token, y.to(out.dtype))
        return out.reshape(shape)

    @classmethod
    def from_hf(cls, block) -> SparseMoE:
        """From a transformers ``MixtralSparseMoeBlock`` (or one with the same layout)."""
        E, two_f, d = block.experts.gate_up_proj.shape
        moe = cls(d, two_f // 2, E, block.top_k)
        moe.load_state_dict(block.state_dict(), strict=True)
        return moe

    def to_hf(self):
        """A transformers ``MixtralSparseMoeBlock`` with these weights."""
        from transformers import MixtralConfig
        from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

        E, two_f, d = self.experts.gate_up_proj.shape
        cfg = MixtralConfig(hidden_size=d, intermediate_size=two_f // 2, num_local_experts=E,
                            num_experts_per_tok=self.k, router_jitter_noise=0.0, hidden_act="silu")
        block = MixtralSparseMoeBlock(cfg)
        block.load_state_dict(self.state_dict(), strict=True)
        return block.eval()


__all__ = ["SparseMoE", "capacity_keep", "expert_capacity", "expert_utilisation", "load_balancing_loss",
           "router_z_loss", "top_k_route"]
