"""Key/value cache memory for real model sizes, from their published configuration values.

Every token a decoder keeps in its cache costs, in every layer, one key and one value vector per
key/value head:

    bytes per token = 2 (K and V) * n_layers * n_kv_heads * head_dim * bytes_per_value

so a batch of ``batch`` sequences of ``seq_len`` tokens holds ``batch * seq_len`` times that.
Grouped-query attention (GQA) shrinks it by ``n_heads / n_kv_heads``.

The configs below are the published values of each model's ``config.json`` on the Hugging Face Hub
(``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads``, ``hidden_size``), which
match Table 1 / Section 2.2 of the Llama 2 paper (Touvron et al., 2023, arXiv:2307.09288): 7B and
13B use multi-head attention, 70B grouped-query attention with 8 key/value heads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..measure import kv_cache_bytes


@dataclass(frozen=True)
class ModelShape:
    """The configuration fields that set a decoder's KV cache size."""

    name: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    hidden: int
    source: str = ""
    head_dim: int | None = None  # None: hidden // n_heads (as in every model listed here)

    def __post_init__(self) -> None:
        for field in ("n_layers", "n_heads", "n_kv_heads", "hidden"):
            v = getattr(self, field)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{field}: expected a positive int, got {v!r}")
        if self.head_dim is None and self.hidden % self.n_heads:
            raise ValueError(f"n_heads: expected a divisor of hidden={self.hidden}, got {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_kv_heads: expected a divisor of n_heads={self.n_heads}, "
                             f"got {self.n_kv_heads}")
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.hidden // self.n_heads)

    def without_gqa(self) -> ModelShape:
        """The same model with one key/value head per query head (plain multi-head attention)."""
        return replace(self, name=f"{self.name} (no GQA)", n_kv_heads=self.n_heads)


_HUB = "config.json of meta-llama/{} on the Hugging Face Hub; Touvron et al. 2023, Table 1"

#: Published configurations (the values of each model's config.json).
LLAMA2 = {
    "Llama 2 7B": ModelShape("Llama 2 7B", n_layers=32, n_heads=32, n_kv_heads=32, hidden=4096,
                             source=_HUB.format("Llama-2-7b-hf")),
    "Llama 2 13B": ModelShape("Llama 2 13B", n_layers=40, n_heads=40, n_kv_heads=40, hidden=5120,
                              source=_HUB.format("Llama-2-13b-hf")),
    "Llama 2 70B": ModelShape("Llama 2 70B", n_layers=80, n_heads=64, n_kv_heads=8, hidden=8192,
                              source=_HUB.format("Llama-2-70b-hf")),
}


def cache_bytes(shape: ModelShape, seq_len: int, batch: int = 1, bytes_per_value: int = 2) -> int:
    """Bytes of KV cache for ``batch`` sequences of ``seq_len`` tokens (fp16/bf16: 2 bytes)."""
    for name, v in (("seq_len", seq_len), ("batch", batch)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name}: expected an int >= 0, got {v!r}")
    return batch * seq_len * kv_cache_bytes(shape.n_layers, shape.n_kv_heads, shape.head_dim,
                                            bytes_per_value)


def allocated_cache_bytes(cache) -> int:
    """Bytes our models' caches actually hold: the sum of every layer's key and value tensors.

    ``cache`` is the list :meth:`roadmap_lib.models.Llama.new_cache` returns, after a forward pass.
    """
    total = 0
    for i, layer in enumerate(cache):
        k, v = getattr(layer, "k", None), getattr(layer, "v", None)
        if k is None or v is None:
            raise ValueError(f"cache: layer {i} holds nothing yet; run a forward pass with it first")
        total += k.numel() * k.element_size() + v.numel() * v.element_size()
    return total


def shape_of(config) -> ModelShape:
    """The :class:`ModelShape` of one of our model configs (``GPTConfig`` or ``LlamaConfig``)."""
    n_kv = getattr(config, "n_kv_heads", None) or config.n_heads
    return ModelShape(type(config).__name__, n_layers=config.n_layers, n_heads=config.n_heads,
                      n_kv_heads=n_kv, hidden=config.d_model,
                      head_dim=getattr(config, "head_dim", None) or config.d_model // config.n_heads)


def dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


__all__ = ["LLAMA2", "ModelShape", "allocated_cache_bytes", "cache_bytes", "dtype_bytes", "shape_of"]
