"""PagedAttention's memory manager (Kwon et al., 2023): a KV cache cut into fixed-size blocks.

A contiguous cache reserves ``max_len`` slots per sequence the moment it starts, because a tensor
cannot grow in place; most of it stays empty when sequences end early. vLLM instead keeps one
*pool* of blocks of ``block_size`` token slots, and each sequence a *block table*: the list of the
blocks holding its tokens 0..bs-1, bs..2bs-1, ... A sequence takes a new block only when its last
one is full, so at most ``block_size - 1`` slots per sequence are ever reserved and unused, and
a finished sequence's blocks go straight back to the free list for the next request.

    pool:         (n_layers, num_blocks, kv_heads, block_size, head_dim)   for keys, same for values
    block table:  seq -> [7, 2, 9]       token t lives in block table[t // bs], slot t % bs

Attention reads a sequence's keys through its block table (:func:`gather_kv`); the result equals
the contiguous cache exactly, the same numbers in the same order.
"""

from __future__ import annotations

import torch

from ..attention import scaled_dot_product_attention


class OutOfBlocks(RuntimeError):
    """The pool has no free block left (a scheduler must wait, or preempt a sequence)."""


class BlockAllocator:
    """A free list of ``num_blocks`` block ids; ``allocate`` pops one, ``free`` gives them back."""

    def __init__(self, num_blocks: int) -> None:
        if not isinstance(num_blocks, int) or isinstance(num_blocks, bool) or num_blocks < 1:
            raise ValueError(f"num_blocks: expected a positive int, got {num_blocks!r}")
        self.num_blocks = num_blocks
        self._free = list(range(num_blocks - 1, -1, -1))  # pop() hands out 0, 1, 2, ... first
        self._used: set[int] = set()

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_used(self) -> int:
        return len(self._used)

    def allocate(self) -> int:
        if not self._free:
            raise OutOfBlocks(f"all {self.num_blocks} blocks are in use")
        block = self._free.pop()
        self._used.add(block)
        return block

    def free(self, blocks) -> None:
        for b in blocks:
            if b not in self._used:
                raise ValueError(f"blocks: block {b!r} is not allocated (double free?)")
            self._used.remove(b)
            self._free.append(b)


class PagedKVCache:
    """Keys and values of many sequences in one pool of blocks, addressed through block tables.

    ``reserve(seq, n)`` makes room for ``n`` more tokens of ``seq`` (taking blocks as needed) and
    returns where they go; ``views(seq)`` / :class:`~roadmap_lib.inference.batching` plug the
    cache into a model's forward pass; ``free(seq)`` returns a finished sequence's blocks.
    """

    def __init__(self, n_layers: int, kv_heads: int, head_dim: int, *, num_blocks: int,
                 block_size: int = 16, dtype: torch.dtype = torch.float32) -> None:
        for name, v in (("n_layers", n_layers), ("kv_heads", kv_heads), ("head_dim", head_dim),
                        ("block_size", block_size)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        self.block_size = block_size
        self.allocator = BlockAllocator(num_blocks)
        shape = (n_layers, num_blocks, kv_heads, block_size, head_dim)
        self.k_pool = torch.zeros(shape, dtype=dtype)
        self.v_pool = torch.zeros(shape, dtype=dtype)
        self.tables: dict[object, list[int]] = {}
        self.lengths: dict[object, int] = {}

    @classmethod
    def for_model(cls, model, *, num_blocks: int, block_size: int = 16) -> PagedKVCache:
        """A pool shaped for one of our GPT/Llama models."""
        c = model.config
        kv = getattr(c, "n_kv_heads", None) or c.n_heads
        head_dim = getattr(c, "head_dim", None) or c.d_model // c.n_heads
        return cls(c.n_layers, kv, head_dim, num_blocks=num_blocks, block_size=block_size,
                   dtype=next(model.parameters()).dtype)

    # --- bookkeeping -------------------------------------------------------------------------

    def add(self, seq) -> None:
        if seq in self.tables:
            raise ValueError(f"seq: sequence {seq!r} is already in the cache")
        self.tables[seq], self.lengths[seq] = [], 0

    def free(self, seq) -> None:
        self._check(seq)
        self.allocator.free(self.tables.pop(seq))
        del self.lengths[seq]

    def _check(self, seq) -> None:
        if seq not in self.tables:
            raise KeyError(f"seq: no sequence {seq!r} in the cache (add it first)")

    def reserve(self, seq, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Room for ``n`` more tokens of ``seq``: ``(blocks, offsets)``, each ``(n,)``.

        Takes new blocks from the allocator only when the sequence's last block is full. On
        :class:`OutOfBlocks` nothing changes.
        """
        self._check(seq)
        table, start = self.tables[seq], self.lengths[seq]
        need = -(-(start + n) // self.block_size) - len(table)
        if need > self.allocator.num_free:
            raise OutOfBlocks(f"seq {seq!r} needs {need} more blocks, {self.allocator.num_free} free")
        table.extend(self.allocator.allocate() for _ in range(need))
        pos = torch.arange(start, start + n)
        self.lengths[seq] = start + n
        blocks = torch.tensor(table, dtype=torch.long)[pos // self.block_size]
        return blocks, pos % self.block_size

    def write(self, layer: int, blocks: torch.Tensor, offsets: torch.Tensor,
              k: torch.Tensor, v: torch.Tensor) -> None:
        """Store ``k``, ``v`` of shape ``(n, kv_heads, head_dim)`` at the reserved slots."""
        self.k_pool[layer, blocks, :, offsets] = k.to(self.k_pool.dtype)
        self.v_pool[layer, blocks, :, offsets] = v.to(self.v_pool.dtype)

    def block_tables(self, seqs) -> torch.Tensor:
        """``(len(seqs), max_blocks)`` block ids, short tables padded with block 0 (masked later)."""
        width = max(len(self.tables[s]) for s in seqs)
        return torch.tensor([self.tables[s] + [0] * (width - len(self.tables[s])) for s in seqs],
                            dtype=torch.long)

    def gather(self, layer: int, seqs, max_len: int | None = None):
        """Keys and values of ``seqs`` as padded contiguous tensors ``(batch, kv_heads, L, d)``.

        ``L`` is the longest sequence (or ``max_len``); each row is valid up to its length.
        """
        for s in seqs:
            self._check(s)
        lengths = torch.tensor([self.lengths[s] for s in seqs])
        max_len = int(lengths.max()) if max_len is None else max_len
        return (gather_kv(self.k_pool[layer], self.block_tables(seqs), max_len),
                gather_kv(self.v_pool[layer], self.block_tables(seqs), max_len), lengths)

    # --- memory accounting ---------------------------------------------------------------------

    def bytes_per_block(self) -> int:
        """Key and value bytes of one block, over all layers."""
        per = self.k_pool[:, 0].numel() * self.k_pool.element_size()
        return 2 * per

    def reserved_bytes(self) -> int:
        """Bytes of the blocks currently handed out to sequences."""
        return self.allocator.num_used * self.bytes_per_block()

    def used_bytes(self) -> int:
        """Bytes that hold a token (the rest of the reserved bytes is the last blocks' free tail)."""
        return sum(self.lengths.values()) * self.bytes_per_block() // self.block_size

    # --- plugging into a model's forward pass --------------------------------------------------

    def views(self, seq, n_new: int) -> list[PagedLayerView]:
        """Per-layer caches for a forward pass of ``n_new`` tokens of ``seq`` (batch of one).

        Use as ``model(ids, cache=paged.views(seq, ids.shape[1]))``: the room is reserved first,
        each layer writes its new keys/values into the blocks and reads all of them back.
        """
        past = self.lengths.get(seq, None)
        if past is None:
            self._check(seq)
        blocks, offsets = self.reserve(seq, n_new)
        return [PagedLayerView(self, layer, seq, past, blocks, offsets)
                for layer in range(self.k_pool.shape[0])]


class PagedLayerView:
    """One layer of one sequence's paged cache, with the ``len``/``update`` of :class:`KVCache`."""

    def __init__(self, cache: PagedKVCache, layer: int, seq, past: int, blocks, offsets) -> None:
        self.cache, self.layer, self.seq, self.past = cache, layer, seq, past
        self.blocks, self.offsets = blocks, offsets

    def __len__(self) -> int:
        return self.past

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if k.ndim != 4 or k.shape[0] != 1 or k.shape[2] != len(self.blocks):
            raise ValueError(f"k: expected (1, kv_heads, {len(self.blocks)}, d) for the reserved "
                             f"tokens, got {tuple(k.shape)}")
        self.cache.write(self.layer, self.blocks, self.offsets, k[0].transpose(0, 1),
                         v[0].transpose(0, 1))
        keys, values, _ = self.cache.gather(self.layer, [self.seq])
        return keys, values


def gather_kv(pool: torch.Tensor, block_tables: torch.Tensor, max_len: int) -> torch.Tensor:
    """Read sequences out of one layer's pool through their block tables.

    pool ``(num_blocks, kv_heads, block_size, d)``, block_tables ``(batch, max_blocks)`` ->
    ``(batch, kv_heads, max_len, d)``: token ``t`` of row ``b`` is
    ``pool[block_tables[b, t // block_size], :, t % block_size]``.
    """
    if pool.ndim != 4:
        raise ValueError(f"pool: expected (num_blocks, kv_heads, block_size, d), got {tuple(pool.shape)}")
    if block_tables.ndim != 2 or block_tables.dtype != torch.long:
        raise ValueError(f"block_tables: expected a (batch, max_blocks) int64 tensor, got "
                         f"{tuple(block_tables.shape)} {block_tables.dtype}")
    _, heads, bs, d = pool.shape
    if max_len > block_tables.shape[1] * bs:
        raise ValueError(f"max_len: expected at most {block_tables.shape[1] * bs} slots "
                         f"({block_tables.shape[1]} blocks of {bs}), got {max_len}")
    b, nb = block_tables.shape
    x = pool[block_tables]  # (batch, max_blocks, kv_heads, block_size, d)
    return x.permute(0, 2, 1, 3, 4).reshape(b, heads, nb * bs, d)[:, :, :max_len]


def paged_attention(q: torch.Tensor, k_pool: torch.Tensor, v_pool: torch.Tensor,
                    block_tables: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Decode-step attention straight from a paged cache.

    q ``(batch, heads, 1, d)`` (the newest token of each sequence, whose key is already stored),
    pools ``(num_blocks, kv_heads, block_size, d)``, block_tables ``(batch, max_blocks)``,
    lengths ``(batch,)`` tokens stored per sequence -> ``(batch, heads, 1, d)``.
    """
    if q.ndim != 4 or q.shape[2] != 1:
        raise ValueError(f"q: expected (batch, heads, 1, d), got {tuple(q.shape)}")
    lengths = torch.as_tensor(lengths)
    if lengths.shape != (q.shape[0],) or bool((lengths < 1).any()):
        raise ValueError(f"lengths: expected ({q.shape[0]},) values >= 1, got {lengths.tolist()}")
    max_len = int(lengths.max())
    k = gather_kv(k_pool, block_tables, max_len)
    v = gather_kv(v_pool, block_tables, max_len)
    pad = torch.arange(max_len)[None, :] >= lengths[:, None]
    return scaled_dot_product_attention(q, k, v, key_padding_mask=pad,
                                        enable_gqa=k.shape[1] != q.shape[1])


def waste_report(cache_factory, lengths, max_len: int) -> dict:
    """Memory of a workload under paged and contiguous caches, measured from the allocations.

    ``cache_factory()`` gives an empty :class:`PagedKVCache`; every sequence of ``lengths``
    is added and grown token block by block; the contiguous baseline allocates one
    ``(kv_heads, max_len, d)`` key and value tensor per layer per sequence, as a static cache does.
    Returns bytes holding tokens, bytes reserved by each scheme and their waste fractions.
    """
    lengths = [int(n) for n in lengths]
    if any(n < 1 or n > max_len for n in lengths):
        raise ValueError(f"lengths: expected values in [1, max_len={max_len}], got {lengths}")
    paged = cache_factory()
    for i, n in enumerate(lengths):
        paged.add(i)
        for _ in range(n):
            paged.reserve(i, 1)
    layers, _, heads, _, d = paged.k_pool.shape
    contiguous = [torch.empty(heads, max_len, d, dtype=paged.k_pool.dtype)
                  for _ in range(2 * layers * len(lengths))]
    contiguous_bytes = sum(t.numel() * t.element_size() for t in contiguous)
    used, reserved = paged.used_bytes(), paged.reserved_bytes()
    return {"used_bytes": used, "paged_bytes": reserved, "contiguous_bytes": contiguous_bytes,
                "paged_waste": 1 - used / reserved, "contiguous_waste": 1 - used / contiguous_bytes,
                "blocks": paged.allocator.num_used}


__all__ = ["BlockAllocator", "OutOfBlocks", "PagedKVCache", "PagedLayerView", "gather_kv",
           "paged_attention", "waste_report"]
