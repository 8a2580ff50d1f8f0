"""Serving a decoder-only model efficiently (chapter 15).

- :mod:`.kv_memory`: how many bytes a key/value cache costs, for published model configs;
- :mod:`.paged`: PagedAttention's block allocator, block tables and a paged KV cache;
- :mod:`.batching`: ragged batched decoding and a continuous-batching scheduler;
- :mod:`.speculative`: speculative decoding, greedy and sampling;
- :mod:`.sinks`: a rolling (sliding-window) KV cache with attention sinks, streaming perplexity.
"""
