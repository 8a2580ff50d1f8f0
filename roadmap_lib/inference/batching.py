"""Continuous batching (Orca, Yu et al. 2022; vLLM): a scheduler that admits and retires
sequences at every decoding step, over a paged KV cache.

*Static batching* takes ``max_batch`` requests, decodes them together until the last one is done,
then takes the next ``max_batch``: a slot whose request finished early stays idle while the
longest request runs on. *Continuous batching* refills a slot the step after it frees, so the
batch stays full while requests are waiting.

The batch is *ragged*: each sequence has its own length and position. :func:`decode_step` runs one
step of a GPT for a list of sequences, each reading its own keys from the paged cache behind a
padding mask. Only greedy decoding here, so every request's tokens can be checked against
:func:`roadmap_lib.generation.greedy` on that request alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..attention import padding_mask
from .paged import PagedKVCache


@dataclass
class Request:
    rid: int
    prompt: list[int]
    max_new_tokens: int

    def __post_init__(self) -> None:
        if not self.prompt:
            raise ValueError(f"prompt: request {self.rid} has an empty prompt")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: expected an int >= 1, got {self.max_new_tokens!r}")


@dataclass
class Result:
    rid: int
    tokens: list[int] = field(default_factory=list)  # generated tokens (the prompt excluded)
    first_token_s: float = 0.0  # seconds from the start of the run to its first token
    finish_s: float = 0.0  # seconds from the start of the run to its last token
    admitted_step: int = 0
    finished_step: int = 0


def _check_gpt(model) -> None:
    for name in ("wte", "wpe", "blocks", "ln_f", "lm_head"):
        if not hasattr(model, name):
            raise TypeError(f"model: expected one of our GPT models (with .{name}), got "
                            f"{type(model).__name__}")


class _BatchLayerView:
    """One layer's cache for a ragged decode step: writes each row's new key into its blocks and
    reads back every row's keys, padded to the longest."""

    def __init__(self, cache: PagedKVCache, layer: int, seqs, blocks, offsets, max_len: int):
        self.cache, self.layer, self.seqs = cache, layer, seqs
        self.blocks, self.offsets, self.max_len = blocks, offsets, max_len

    def __len__(self) -> int:  # > 0: tells attention that keys come before the query
        return self.max_len - 1

    def update(self, k: torch.Tensor, v: torch.Tensor):
        self.cache.write(self.layer, self.blocks, self.offsets, k[:, :, 0], v[:, :, 0])
        keys, values, _ = self.cache.gather(self.layer, self.seqs, self.max_len)
        return keys, values


@torch.no_grad()
def prefill(model, cache: PagedKVCache, seq, prompt: list[int]) -> torch.Tensor:
    """Run ``prompt`` of a new sequence through the model into the cache; logits ``(vocab,)``
    of the next token."""
    _check_gpt(model)
    cache.add(seq)
    ids = torch.tensor([prompt], dtype=torch.long)
    return model(ids, cache=cache.views(seq, len(prompt)))[0, -1]


@torch.no_grad()
def decode_step(model, cache: PagedKVCache, seqs: list, tokens: torch.Tensor) -> torch.Tensor:
    """One decoding step for a ragged batch: ``tokens (batch,)``, the newest token of each
    sequence in ``seqs`` -> next-token logits ``(batch, vocab)``.

    Each token gets its own position (its sequence's length); attention sees only its own
    sequence's keys (the padding mask hides the rest of the padded rows).
    """
    _check_gpt(model)
    if tokens.shape != (len(seqs),):
        raise ValueError(f"tokens: expected shape ({len(seqs)},), one per sequence, got "
                         f"{tuple(tokens.shape)}")
    past = torch.tensor([cache.lengths[s] for s in seqs])
    if int(past.max()) + 1 > model.config.context_length:
        raise ValueError(f"seqs: a sequence would reach {int(past.max()) + 1} tokens, past the "
                         f"model's context length {model.config.context_length}")
    slots = [cache.reserve(s, 1) for s in seqs]
    blocks = torch.cat([b for b, _ in slots])
    offsets = torch.cat([o for _, o in slots])
    max_len = int(past.max()) + 1
    views = [_BatchLayerView(cache, i, seqs, blocks, offsets, max_len)
             for i in range(len(model.blocks))]
    x = model.wte(tokens[:, None]) + model.wpe(past[:, None])
    pad = padding_mask(past + 1, max_len)
    for i, block in enumerate(model.blocks):
        x = block(x, cache=views[i], key_padding_mask=pad)
    return model.lm_head(model.ln_f(x))[:, -1]


def serve(model, requests: list[Request], *, max_batch: int, policy: str = "continuous",
          num_blocks: int = 256, block_size: int = 16, clock=time.perf_counter) -> dict:
    """Serve ``requests`` (all waiting at time 0, in order) greedily; return results and a trace.

    ``policy="continuous"`` admits a waiting request whenever a slot is free (before every step);
    ``"static"`` admits a new group of up to ``max_batch`` only once the running group is done.
    Finished sequences leave the batch at once under both policies (the static baseline never
    computes padding rows), so the only difference is when free slots are refilled.

    Returns ``{"results": [Result...] (by rid), "steps": decode steps, "batch_sizes": [...],
    "seconds": wall time, "tokens": generated tokens}``.
    """
    if policy not in ("continuous", "static"):
        raise ValueError(f"policy: expected 'continuous' or 'static', got {policy!r}")
    if not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch: expected an int >= 1, got {max_batch!r}")
    _check_gpt(model)
    for r in requests:
        if len(r.prompt) + r.max_new_tokens > model.config.context_length + 1:
            raise ValueError(f"requests: request {r.rid} needs {len(r.prompt)} + "
                             f"{r.max_new_tokens} tokens, past the context length "
                             f"{model.config.context_length}")
    cache = PagedKVCache.for_model(model, num_blocks=num_blocks, block_size=block_size)
    waiting = list(requests)
    running: dict[int, Result] = {}
    last: dict[int, int] = {}
    budget = {r.rid: r.max_new_tokens for r in requests}
    done: list[Result] = []
    steps, batch_sizes = 0, []
    start = clock()
    while waiting or running:
        if policy == "continuous" or not running:
            while waiting and len(running) < max_batch:
                r = waiting.pop(0)
                token = int(prefill(model, cache, r.rid, r.prompt).argmax())
                res = Result(r.rid, [token], first_token_s=clock() - start, admitted_step=steps)
                running[r.rid], last[r.rid] = res, token
                if len(res.tokens) == budget[r.rid]:  # a one-token request is done already
                    res.finish_s, res.finished_step = res.first_token_s, steps
                    done.append(running.pop(r.rid))
                    cache.free(r.rid)
        if not running:
            continue
        seqs = list(running)
        logits = decode_step(model, cache, seqs, torch.tensor([last[s] for s in seqs]))
        steps += 1
        batch_sizes.append(len(seqs))
        now = clock() - start
        for s, token in zip(seqs, logits.argmax(-1).tolist()):
            res = running[s]
            res.tokens.append(token)
            last[s] = token
            if len(res.tokens) == budget[s]:
                res.finish_s, res.finished_step = now, steps
                done.append(running.pop(s))
                cache.free(s)
    seconds = clock() - start
    done.sort(key=lambda r: r.rid)
    return {"results": done, "steps": steps, "batch_sizes": batch_sizes, "seconds": seconds,
                "tokens": sum(len(r.tokens) for r in done)}


def mixed_workload(n: int, vocab_size: int, *, prompt_range=(4, 16), new_range=(2, 40),
                   seed: int = 0, corpus: torch.Tensor | None = None) -> list[Request]:
    """``n`` requests with prompt and output lengths drawn uniformly from the ranges (seeded).

    Prompts are windows of ``corpus`` (a 1-D tensor of ids) when given, random ids otherwise.
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        p = int(torch.randint(prompt_range[0], prompt_range[1] + 1, (), generator=g))
        m = int(torch.randint(new_range[0], new_range[1] + 1, (), generator=g))
        if corpus is not None:
            s = int(torch.randint(0, len(corpus) - p, (), generator=g))
            prompt = corpus[s:s + p].tolist()
        else:
            prompt = torch.randint(0, vocab_size, (p,), generator=g).tolist()
        out.append(Request(i, prompt, m))
    return out


__all__ = ["Request", "Result", "decode_step", "mixed_workload", "prefill", "serve"]
