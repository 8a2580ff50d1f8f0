"""Chapter 15's experiment drivers: memory tables, the speculative-decoding and streaming runs
on the zoo models, and the benchmark file reader."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from roadmap_lib.data import CharLMData
from roadmap_lib.generation import greedy
from roadmap_lib.inference.kv_memory import (
    LLAMA2,
    ModelShape,
    allocated_cache_bytes,
    cache_bytes,
    shape_of,
)
from roadmap_lib.inference.paged import PagedKVCache
from roadmap_lib.inference.sinks import recompute_nll, stream_nll
from roadmap_lib.inference.speculative import speculative_generate
from roadmap_lib.models import Llama, LlamaConfig
from roadmap_lib.models.hf import gpt_to_hf

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "inference.json"
GIB = 2**30


def load_benchmark(path: Path | None = None) -> dict:
    """The measured timings of ``benchmarks/bench_inference.py``."""
    path = BENCHMARK if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python benchmarks/bench_inference.py`")
    return json.loads(path.read_text(encoding="utf-8"))


def kv_table(seq_len: int = 4096, batch: int = 1, bytes_per_value: int = 2) -> list[dict]:
    """KV cache of the Llama 2 models at ``seq_len`` tokens, and of 70B without its GQA."""
    shapes = list(LLAMA2.values()) + [LLAMA2["Llama 2 70B"].without_gqa()]
    rows = []
    for s in shapes:
        rows.append({"model": s.name, "layers": s.n_layers, "heads": s.n_heads, "kv_heads": s.n_kv_heads,
                         "head_dim": s.head_dim, "hidden": s.hidden,
                         "kib_per_token": cache_bytes(s, 1, 1, bytes_per_value) / 2**10,
                         "gib": cache_bytes(s, seq_len, batch, bytes_per_value) / GIB})
    return rows


def measured_cache(n_kv_heads: int, *, seq_len: int = 24, batch: int = 2, seed: int = 0) -> dict:
    """Bytes our Llama's cache really allocates (a small GQA config) next to the formula's."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=64, context_length=64, d_model=64, n_layers=3, n_heads=8,
                      n_kv_heads=n_kv_heads)
    model = Llama(cfg).eval()
    cache = model.new_cache()
    with torch.no_grad():
        model(torch.randint(0, 64, (batch, seq_len)), cache=cache)
    return {"n_kv_heads": n_kv_heads, "measured": allocated_cache_bytes(cache),
                "formula": cache_bytes(shape_of(cfg), seq_len, batch, bytes_per_value=4)}


@torch.no_grad()
def compare_paged(model, ids: torch.Tensor, *, prefill: int = 8, block_size: int = 8) -> dict:
    """Decode ``ids`` (1, n) with a paged cache and with the plain cache: the prompt's first
    ``prefill`` tokens in one pass, then one token at a time. Returns the largest logit
    difference and the sequence's block table."""
    paged = PagedKVCache.for_model(model, num_blocks=ids.shape[1] // block_size + 2,
                                   block_size=block_size)
    paged.add(0)
    plain = model.new_cache()
    steps = [(0, prefill)] + [(t, t + 1) for t in range(prefill, ids.shape[1])]
    gap = 0.0
    for a, b in steps:
        got = model(ids[:, a:b], cache=paged.views(0, b - a))
        ref = model(ids[:, a:b], cache=plain)
        gap = max(gap, float((got - ref).abs().max()))
    return {"max_abs_diff": gap, "table": list(paged.tables[0]), "length": paged.lengths[0]}


def val_ids(vocab) -> torch.Tensor:
    """The validation split of the Jargon File as ids of ``vocab`` (chapter 07's split)."""
    return CharLMData(context=64, batch_size=1, vocab=vocab).splits["val"]


def prompts(ids: torch.Tensor, n: int, length: int, seed: int = 0) -> list[torch.Tensor]:
    """``n`` windows of ``length`` ids at seeded random places of ``ids``, each ``(1, length)``."""
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - length, (n,), generator=g).tolist()
    return [ids[s:s + length][None] for s in starts]


def spec_sweep(target, draft, prompt_list, ks=(1, 2, 3, 4, 6, 8), max_new_tokens: int = 48) -> dict:
    """Greedy speculative decoding for every prompt and draft length ``k``: acceptance rate and
    tokens per target call, and whether each output equals the target's own greedy output."""
    refs = [greedy(target, p, max_new_tokens, use_cache=True) for p in prompt_list]
    out = {}
    for k in ks:
        rows = []
        for p, ref in zip(prompt_list, refs):
            got, st = speculative_generate(target, draft, p, max_new_tokens, k=k)
            rows.append({"identical": bool(torch.equal(got, ref)), "acceptance": st.acceptance_rate,
                             "tokens_per_call": max_new_tokens / st.target_calls,
                             "target_calls": st.target_calls, "draft_calls": st.draft_calls})
        out[k] = rows
    return out


def transformers_assisted(target, draft, ids: torch.Tensor, max_new_tokens: int, k: int) -> torch.Tensor:
    """transformers' assisted generation (``generate(assistant_model=...)``, greedy) with our two
    GPTs converted to ``GPT2LMHeadModel``; a constant schedule of ``k`` draft tokens per round."""
    hf_target, hf_draft = gpt_to_hf(target), gpt_to_hf(draft)
    for m in (hf_target, hf_draft):  # our char vocabularies have no special tokens
        m.generation_config.eos_token_id = m.generation_config.bos_token_id = None
        m.generation_config.pad_token_id = 0
    hf_draft.generation_config.num_assistant_tokens = k
    hf_draft.generation_config.num_assistant_tokens_schedule = "constant"
    return hf_target.generate(ids, assistant_model=hf_draft, max_new_tokens=max_new_tokens,
                              do_sample=False, attention_mask=torch.ones_like(ids))


def streaming(model, segments: list[torch.Tensor], *, window: int = 59, n_sink: int = 4) -> dict:
    """Per-token NLL of each segment under four ways of reading past the context window:
    a rolling cache of the last ``n_sink + window`` tokens, the same cache keeping ``n_sink``
    sink tokens plus the last ``window``, and re-computation over the last ``n_sink + window + 1``
    tokens (the reference); every method sees at most ``n_sink + window + 1`` tokens at once."""
    span = n_sink + window
    out = {"rolling": [], "sinks": [], "recompute": []}
    for seg in segments:
        out["rolling"].append(stream_nll(model, seg, window=span, n_sink=0))
        out["sinks"].append(stream_nll(model, seg, window=window, n_sink=n_sink))
        out["recompute"].append(recompute_nll(model, seg, window=span + 1))
    return out


def shape_rows(shapes: list[ModelShape]) -> list[dict]:
    return [{"model": s.name, "layers": s.n_layers, "kv_heads": s.n_kv_heads, "head_dim": s.head_dim}
            for s in shapes]


__all__ = ["BENCHMARK", "GIB", "compare_paged", "kv_table", "load_benchmark", "measured_cache", "prompts",
           "shape_rows", "spec_sweep", "streaming", "transformers_assisted", "val_ids"]
