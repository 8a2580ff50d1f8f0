"""Chapter 26's drivers: a live load test of the server, summaries of the benchmark files, and
the four pitfalls (tokenizer mismatch, padding side, dtype drift, unbounded queues) as small runs.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import httpx
import torch

from roadmap_lib.generation import greedy
from roadmap_lib.serve import create_app, run_async, running_server

RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results"


# --- latency statistics ------------------------------------------------------------------------


def percentile(values, q: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least ``q`` % of the samples at or
    below it (``sorted[ceil(q/100 * n) - 1]``; numpy's ``method="inverted_cdf"``). Always a value
    that was measured, never an interpolation between two."""
    values = sorted(float(v) for v in values)
    if not values:
        raise ValueError("values: expected at least one latency, got none")
    if not 0 < q <= 100:
        raise ValueError(f"q: expected a percentile in (0, 100], got {q!r}")
    return values[max(math.ceil(q / 100 * len(values)) - 1, 0)]


def summarise_level(level: dict) -> dict:
    """One concurrency level of a load run -> throughput, p50/p95/p99 latency and TTFT (seconds)."""
    out = {"concurrency": level["concurrency"], "throughput": level["throughput_tok_s"],
           "ok": level["ok"], "requests": level["requests"]}
    for key in ("latency_s", "ttft_s"):
        for q in (50, 95, 99):
            out[f"{key[:-2]}_p{q}"] = percentile(level[key], q)
    return out


def load_results(name: str) -> dict:
    """A results file written by a script in benchmarks/ (``26_serve_load``, ``26_export_latency``)."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python benchmarks/{name[3:]}.py`")
    return json.loads(path.read_text(encoding="utf-8"))


def serve_load_table(record: dict) -> dict[str, list[dict]]:
    """``{config: [per concurrency: mean over rounds of throughput, and the rounds' spread,
    and the pooled-over-rounds latency percentiles]}``."""
    table = {}
    for config, rounds in record["runs"].items():
        rows = []
        for i, level in enumerate(rounds[0]):
            same = [r[i] for r in rounds]
            pooled = {"concurrency": level["concurrency"], "throughput_tok_s": 0.0,
                      "ok": sum(s["ok"] for s in same), "requests": sum(s["requests"] for s in same),
                      "latency_s": [x for s in same for x in s["latency_s"]],
                      "ttft_s": [x for s in same for x in s["ttft_s"]]}
            row = summarise_level(pooled)
            tps = [s["throughput_tok_s"] for s in same]
            row.update(throughput=sum(tps) / len(tps), throughput_min=min(tps),
                       throughput_max=max(tps), throughput_rounds=tps)
            rows.append(row)
        table[config] = rows
    return table


# --- a live load test, small enough for the chapter --------------------------------------------


async def _closed_loop(url: str, prompts: list[str], concurrency: int, max_tokens: int) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def worker(i):
            out = []
            for p in prompts[i::concurrency]:
                start = time.perf_counter()
                r = await client.post("/v1/completions", json={"prompt": p, "max_tokens": max_tokens})
                out.append((r.status_code, time.perf_counter() - start))
            return out

        start = time.perf_counter()
        done = [x for rs in await asyncio.gather(*[worker(i) for i in range(concurrency)]) for x in rs]
        seconds = time.perf_counter() - start
    ok = [s for code, s in done if code == 200]
    return {"seconds": seconds, "ok": len(ok), "requests": len(done),
            "throughput_tok_s": len(ok) * max_tokens / seconds, "latency_s": ok}


def live_load_test(model, tokenizer, prompts: list[str], *, concurrency: int, max_tokens: int,
                   max_batch: int, max_wait_ms: float = 2.0) -> dict:
    """Start the server in this process (127.0.0.1), send ``prompts`` from ``concurrency`` clients
    (closed loop, each waits for its answer before the next), stop it; throughput, latencies, and
    the server's mean batch size."""
    app = create_app(model, tokenizer, max_batch=max_batch, max_wait_ms=max_wait_ms)
    with running_server(app) as (url, _):
        out = run_async(_closed_loop(url, prompts, concurrency, max_tokens))
    stats = app.state.batcher.stats
    out["mean_batch"] = stats["batched_sequences"] / max(stats["steps"], 1)
    return out


def burst_test(model, tokenizer, prompts: list[str], *, max_tokens: int, max_batch: int,
               max_queue: int) -> dict:
    """All ``prompts`` at once to a server with a queue of ``max_queue``: how many answered (200),
    refused (503), anything else (must be none)."""
    app = create_app(model, tokenizer, max_batch=max_batch, max_wait_ms=0, max_queue=max_queue)

    async def go(url):
        async with httpx.AsyncClient(base_url=url, timeout=120,
                                     limits=httpx.Limits(max_connections=len(prompts) + 4)) as c:
            rs = await asyncio.gather(*[c.post("/v1/completions", json={"prompt": p, "max_tokens": max_tokens})
                                        for p in prompts], return_exceptions=True)
        return [r.status_code if isinstance(r, httpx.Response) else repr(r) for r in rs]

    with running_server(app) as (url, _):
        codes = run_async(go(url))
    return {"answered": codes.count(200), "refused": codes.count(503),
            "other": [c for c in codes if c not in (200, 503)]}


# --- pitfalls -------------------------------------------------------------------------------


@torch.no_grad()
def char_loss(model, ids: torch.Tensor) -> float:
    """Mean next-token cross-entropy (nats) of ``model`` on a 1-D id sequence, in windows of the
    model's context."""
    ctx = model.config.context_length
    n = (len(ids) - 1) // ctx * ctx
    x = ids[:n].view(-1, ctx)
    y = ids[1:n + 1].view(-1, ctx)
    return float(torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()))


@torch.no_grad()
def padded_batch_greedy(hf_model, prompts: list[list[int]], max_new_tokens: int, *, side: str,
                        pad_id: int, attention_mask: bool) -> list[list[int]]:
    """Greedy ``generate`` of a transformers model on a padded batch; the new tokens of each row."""
    longest = max(map(len, prompts))
    rows, masks = [], []
    for p in prompts:
        pad = [pad_id] * (longest - len(p))
        rows.append(pad + p if side == "left" else p + pad)
        ones, zeros = [1] * len(p), [0] * len(pad)
        masks.append(zeros + ones if side == "left" else ones + zeros)
    kw = {"attention_mask": torch.tensor(masks)} if attention_mask else {}
    out = hf_model.generate(torch.tensor(rows), max_new_tokens=max_new_tokens, do_sample=False,
                            pad_token_id=pad_id, **kw)
    return [r[longest:].tolist() for r in out]


def left_padded_greedy(model, prompts: list[list[int]], max_new_tokens: int, *, pad_id: int) -> list[list[int]]:
    """Greedy decoding of a left-padded batch by a model that takes no attention mask (ours): the
    pads are attended to like text, and every position is shifted by the row's padding."""
    longest = max(map(len, prompts))
    rows = torch.tensor([[pad_id] * (longest - len(p)) + p for p in prompts])
    return greedy(model, rows, max_new_tokens, use_cache=True)[:, longest:].tolist()


def alone_greedy(model, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """Each prompt decoded alone (the reference any batching must reproduce)."""
    return [greedy(model, torch.tensor([p]), max_new_tokens, use_cache=True)[0, len(p):].tolist()
            for p in prompts]


def first_divergence(a: list[int], b: list[int]) -> int | None:
    """The first index where two token lists differ (None if equal)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def simulate_queue(arrival_rate: float, service_rate: float, seconds: float, *,
                   max_queue: int | None) -> dict:
    """A deterministic single-server queue: requests arrive every ``1/arrival_rate`` s, each takes
    ``1/service_rate`` s to serve, first come first served. With ``max_queue`` a request that finds
    that many waiting is refused at once; without, it waits. Returns per accepted request its
    arrival time and its wait, and the number refused."""
    for name, v in (("arrival_rate", arrival_rate), ("service_rate", service_rate), ("seconds", seconds)):
        if not v > 0:
            raise ValueError(f"{name}: expected a number > 0, got {v!r}")
    service = 1 / service_rate
    free_at, finishing = 0.0, []  # finish times of accepted requests not yet done
    arrivals, waits, refused = [], [], 0
    for i in range(int(seconds * arrival_rate)):
        t = i / arrival_rate
        finishing = [f for f in finishing if f > t]
        waiting = max(len(finishing) - 1, 0)  # one is in service
        if max_queue is not None and waiting >= max_queue:
            refused += 1
            continue
        start = max(t, free_at)
        free_at = start + service
        finishing.append(free_at)
        arrivals.append(t)
        waits.append(start - t)
    return {"arrival_s": arrivals, "wait_s": waits, "refused": refused,
            "offered": int(seconds * arrival_rate)}


__all__ = ["alone_greedy", "burst_test", "char_loss", "first_divergence", "left_padded_greedy", "live_load_test",
           "load_results", "padded_batch_greedy", "percentile", "serve_load_table",
           "simulate_queue", "summarise_level"]
