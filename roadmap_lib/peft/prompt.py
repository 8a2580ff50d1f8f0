"""Prompt tuning (Lester et al. 2021) and prefix tuning (Li & Liang 2021): the model stays frozen,
and what is learned is extra *input*.

**Prompt tuning** prepends ``n`` trainable "virtual token" embeddings to the input embeddings:

    embeddings = [P_1 ... P_n, E(x_1) ... E(x_T)],      P: (n, d_model)

The model sees ``n + T`` positions (the virtual tokens take positions ``0 .. n-1``, as in peft),
and its output covers them too: slice ``[:, n:]`` for the real tokens. The paper found starting
from the embeddings of real vocabulary tokens better than random (``init="vocab"``).

**Prefix tuning** gives every layer ``n`` trainable key/value pairs that each query may attend
to, as if ``n`` tokens had been processed before the input:

    attention(q, [K_prefix; K], [V_prefix; V]),      prefix: (layers, 2, kv_heads, n, head_dim)

For our models the prefix goes into each layer's :class:`~roadmap_lib.attention.KVCache`, the
same path incremental decoding uses; for transformers models into a ``DynamicCache`` passed as
``cache`` (``past_key_values`` in older transformers; this is peft's mechanism). Either way the
real tokens take positions ``n .. n+T-1`` and the output covers only them. Li & Liang found direct
optimisation of the prefix unstable and reparametrise it through an MLP during training
(``projection_dim``; peft's ``prefix_projection``): ``prefix = W_2 tanh(W_1 E + b_1) + b_2`` from
an ``(n, kv_heads·head_dim)`` table ``E``.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn


def _check_ids(ids) -> None:
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.is_floating_point():
        got = (f"shape {tuple(ids.shape)}, {ids.dtype}" if isinstance(ids, torch.Tensor)
               else type(ids).__name__)
        raise ValueError(f"ids: expected a (batch, seq) integer tensor, got {got}")


def _check_count(n) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"num_virtual_tokens: expected an int >= 1, got {n!r}")


def _freeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def input_embedding(model: nn.Module, name: str | None = None) -> nn.Embedding:
    """The token embedding of ``model``: the named submodule, transformers'
    ``get_input_embeddings()``, or else the first ``nn.Embedding`` (our GPT's ``wte``, Llama's
    ``embed``, BERT's ``bert.tok_emb``)."""
    if name is not None:
        return model.get_submodule(name)
    if callable(getattr(model, "get_input_embeddings", None)):
        return model.get_input_embeddings()
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            return m
    raise ValueError(f"model: {type(model).__name__} has no nn.Embedding; pass embedding=NAME")


class PromptTuning(nn.Module):
    """``model`` (frozen) with ``num_virtual_tokens`` trainable input embeddings in front.

    ``forward(ids, ...)``: ids ``(batch, T)`` -> whatever ``model`` returns for ``n + T``
    positions. Extra arguments go to ``model``; an ``attention_mask`` gets ``n`` ones and
    ``labels`` get ``n`` times -100 in front (as peft does).

    ``init``: ``"vocab"`` copies the embeddings of random vocabulary tokens (seeded by
    ``generator``), a 1-D tensor of token ids copies those, ``"random"`` draws from a normal with
    the embedding table's standard deviation.
    """

    def __init__(self, model: nn.Module, num_virtual_tokens: int, *, init="vocab",
                 embedding: str | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__()
        _check_count(num_virtual_tokens)
        self.model = model
        self.n = num_virtual_tokens
        emb = input_embedding(model, embedding)
        object.__setattr__(self, "_embedding", emb)  # a reference, not a second submodule
        table = emb.weight.detach()
        if isinstance(init, torch.Tensor):
            if init.shape != (num_virtual_tokens,) or init.is_floating_point():
                raise ValueError(f"init: expected {num_virtual_tokens} token ids, got "
                                 f"shape {tuple(init.shape)}, {init.dtype}")
            start = table[init.to(table.device)].clone()
        elif init == "vocab":
            ids = torch.randint(0, table.shape[0], (num_virtual_tokens,), generator=generator)
            start = table[ids.to(table.device)].clone()
        elif init == "random":
            start = torch.randn(num_virtual_tokens, table.shape[1], generator=generator)
            start = (start * table.float().std()).to(table.dtype)
        else:
            raise ValueError(f"init: expected 'vocab', 'random' or a tensor of token ids, "
                             f"got {init!r}")
        _freeze(model)
        self.prompt = nn.Parameter(start.to(table.device))
        self.train(model.training)

    def _insert(self, module, inputs, out: torch.Tensor) -> torch.Tensor:
        prompt = self.prompt.to(out.dtype).expand(out.shape[0], -1, -1)
        return torch.cat([prompt, out[:, self.n:]], dim=1)

    def forward(self, ids: torch.Tensor, *args, **kwargs):
        _check_ids(ids)
        b = ids.shape[0]
        # placeholder ids for the virtual tokens; the hook swaps in the prompt after the lookup
        padded = torch.cat([ids.new_zeros(b, self.n), ids], dim=1)
        if kwargs.get("attention_mask") is not None:
            mask = kwargs["attention_mask"]
            kwargs["attention_mask"] = torch.cat([mask.new_ones(b, self.n), mask], dim=1)
        if kwargs.get("labels") is not None:
            labels = kwargs["labels"]
            kwargs["labels"] = torch.cat([labels.new_full((b, self.n), -100), labels], dim=1)
        handle = self._embedding.register_forward_hook(self._insert)
        try:
            return self.model(padded, *args, **kwargs)
        finally:
            handle.remove()


def prefix_dims(model: nn.Module) -> tuple[int, int, int]:
    """``(n_layers, n_kv_heads, head_dim)`` from our configs or a transformers config."""
    c = getattr(model, "config", None)
    if c is None:
        raise TypeError(f"model: expected a model with a .config, got {type(model).__name__}")
    if hasattr(c, "n_layers"):  # ours: GPTConfig, LlamaConfig
        heads = c.n_heads
        kv = getattr(c, "n_kv_heads", None) or heads
        head_dim = getattr(c, "head_dim", None) or c.d_model // heads
        return c.n_layers, kv, head_dim
    heads = c.num_attention_heads
    kv = getattr(c, "num_key_value_heads", None) or heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
    return c.num_hidden_layers, kv, head_dim


class PrefixTuning(nn.Module):
    """``model`` (frozen; our GPT/Llama, or a transformers decoder) with trainable per-layer
    key/value prefixes. ``forward(ids, ...)``: ids ``(batch, T)`` -> ``model``'s output for the
    ``T`` real tokens.

    ``prefix`` parameter: ``(n_layers, 2, n_kv_heads, num_virtual_tokens, head_dim)`` (keys at
    index 0, values at 1), drawn from N(0, init_std²) (peft: N(0, 1)). With ``projection_dim``,
    the prefix is computed by an MLP instead (see the module docstring).
    """

    def __init__(self, model: nn.Module, num_virtual_tokens: int, *,
                 projection_dim: int | None = None, init_std: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        _check_count(num_virtual_tokens)
        self.model = model
        self.n = num_virtual_tokens
        self.n_layers, self.n_kv_heads, self.head_dim = prefix_dims(model)
        self.shape = (self.n_layers, 2, self.n_kv_heads, num_virtual_tokens, self.head_dim)
        ref = next(model.parameters())
        token_dim = self.n_kv_heads * self.head_dim
        if projection_dim is None:
            start = torch.randn(self.shape, generator=generator) * init_std
            self.prefix = nn.Parameter(start.to(ref.device, ref.dtype))
            self.embedding = self.proj = None
        else:
            if not isinstance(projection_dim, int) or projection_dim < 1:
                raise ValueError(f"projection_dim: expected an int >= 1, got {projection_dim!r}")
            self.prefix = None
            self.embedding = nn.Parameter(torch.randn(num_virtual_tokens, token_dim,
                                                      generator=generator) * init_std)
            self.proj = nn.Sequential(nn.Linear(token_dim, projection_dim), nn.Tanh(),
                                      nn.Linear(projection_dim, 2 * self.n_layers * token_dim))
            self.proj.to(ref.device, ref.dtype)
        _freeze(model)
        self.train(model.training)

    def get_prefix(self) -> torch.Tensor:
        """The ``(n_layers, 2, n_kv_heads, n, head_dim)`` keys and values every layer sees."""
        if self.prefix is not None:
            return self.prefix
        flat = self.proj(self.embedding)  # (n, layers·2·kv_heads·head_dim), peft's layout
        return from_flat_prefix(flat, self.shape)

    def forward(self, ids: torch.Tensor, *args, **kwargs):
        _check_ids(ids)
        b = ids.shape[0]
        prefix = self.get_prefix()
        kv = [(prefix[i, 0].expand(b, -1, -1, -1), prefix[i, 1].expand(b, -1, -1, -1))
              for i in range(self.n_layers)]
        if callable(getattr(self.model, "new_cache", None)):  # ours: one KVCache per block
            cache = self.model.new_cache()
            for layer_cache, (k, v) in zip(cache, kv):
                layer_cache.update(k, v)
            return self.model(ids, cache, *args, **kwargs)
        from transformers import DynamicCache

        if kwargs.get("attention_mask") is not None:
            mask = kwargs["attention_mask"]
            kwargs["attention_mask"] = torch.cat([mask.new_ones(b, self.n), mask], dim=1)
        # transformers 5 calls it ``cache`` (``past_key_values`` is deprecated there)
        params = inspect.signature(self.model.forward).parameters
        name = "cache" if "cache" in params else "past_key_values"
        return self.model(ids, *args, **{name: DynamicCache(kv)}, **kwargs)


def to_flat_prefix(prefix: torch.Tensor) -> torch.Tensor:
    """``(layers, 2, kv_heads, n, head_dim)`` -> peft's ``(n, layers·2·kv_heads·head_dim)``."""
    layers, two, heads, n, head_dim = prefix.shape
    return prefix.permute(3, 0, 1, 2, 4).reshape(n, layers * two * heads * head_dim)


def from_flat_prefix(flat: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """peft's ``(n, layers·2·kv_heads·head_dim)`` -> ``(layers, 2, kv_heads, n, head_dim)``."""
    layers, two, heads, n, head_dim = shape
    if flat.shape != (n, layers * two * heads * head_dim):
        raise ValueError(f"prefix: expected shape {(n, layers * two * heads * head_dim)} for "
                         f"{shape}, got {tuple(flat.shape)}")
    return flat.view(n, layers, two, heads, head_dim).permute(1, 2, 3, 0, 4)


__all__ = ["PrefixTuning", "PromptTuning", "from_flat_prefix", "input_embedding", "prefix_dims",
           "to_flat_prefix"]
