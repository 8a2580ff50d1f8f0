"""Benchmark: the HTTP server (``python -m roadmap_lib serve``) under load, on 127.0.0.1.

Four servers run as subprocesses, one CPU thread each:

- ``fp32 batched``: gpt-char-jargon, dynamic batching with up to ``--max-batch`` sequences;
- ``fp32 unbatched``: the same model, ``--max-batch 1`` (one request decoded at a time);
- ``int8 batched``: gpt-char-jargon with int8 round-to-nearest linear layers (chapter 14);
- ``small batched``: the smaller model (gpt-char-distilled if it is built, else gpt-char-draft).

An async httpx client runs a *closed loop* at each concurrency ``c`` in ``--concurrency``: ``c``
workers each send ``--requests-per-worker`` streaming requests one after another (prompts: 16
characters at seeded places of the Jargon File, ``--max-tokens`` generated greedily). Per request
it records the latency (send -> last token) and the time to first token (send -> first streamed
token); per level the throughput (generated tokens / wall seconds of the level). Rounds visit the
servers in turn (``--rounds``), so a slow spell of a shared machine does not hit one server only;
the file keeps every round. Then an *overload* burst: ``--burst`` requests at once to a server
with a queue of ``--small-queue``: every request must be answered (200) or refused (503), none
lost. Times are wall-clock (latency is what a client waits); the 1-minute load average of the
machine is recorded before and after, since other jobs slow every number.

    python benchmarks/serve_load.py [--rounds 3] [--out benchmarks/results/26_serve_load.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import torch

import roadmap_lib
from roadmap_lib.data import load_text
from roadmap_lib.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "results" / "26_serve_load.json"


def small_model_name() -> str:
    zoo = roadmap_lib.DATA_DIR / "zoo"
    return "gpt-char-distilled" if (zoo / "gpt-char-distilled.safetensors").is_file() else "gpt-char-draft"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(name: str, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "roadmap_lib", "serve", name, "--port", str(port),
                             "--threads", "1", *extra], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server {name} {extra} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server {name} {extra} did not start in 180 s")
        try:
            httpx.get(f"{url}/health", timeout=2)
            break
        except httpx.TransportError:
            time.sleep(0.3)
    for _ in range(3):  # warm-up: the first calls of a fresh process are slow (allocations, caches)
        httpx.post(f"{url}/v1/completions", json={"prompt": "warm-up", "max_tokens": 8}, timeout=120)
    return proc, url


def prompts(n: int, length: int = 16, seed: int = 0) -> list[str]:
    text = load_text()
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(text) - length, (n,), generator=g).tolist()
    return [text[s:s + length] for s in starts]


async def one_request(client: httpx.AsyncClient, prompt: str, max_tokens: int) -> dict:
    start = time.perf_counter()
    first, tokens = None, 0
    body = {"prompt": prompt, "max_tokens": max_tokens, "stream": True}
    async with client.stream("POST", "/v1/completions", json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return {"status": r.status_code, "latency_s": time.perf_counter() - start}
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: "):])
            if chunk["choices"][0]["text"]:
                tokens += 1
                first = first or time.perf_counter()
    end = time.perf_counter()
    return {"status": 200, "latency_s": end - start, "ttft_s": first - start, "tokens": tokens}


async def closed_loop(url: str, concurrency: int, per_worker: int, max_tokens: int, seed: int) -> dict:
    work = prompts(concurrency * per_worker, seed=seed)
    async with httpx.AsyncClient(base_url=url, timeout=300,
                                 limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        async def worker(i):
            return [await one_request(client, p, max_tokens) for p in work[i::concurrency]]

        start = time.perf_counter()
        results = [r for rs in await asyncio.gather(*[worker(i) for i in range(concurrency)]) for r in rs]
        seconds = time.perf_counter() - start
    ok = [r for r in results if r["status"] == 200]
    return {"concurrency": concurrency, "requests": len(results), "ok": len(ok),
            "tokens": sum(r["tokens"] for r in ok), "seconds": seconds,
            "throughput_tok_s": sum(r["tokens"] for r in ok) / seconds,
            "latency_s": [r["latency_s"] for r in ok], "ttft_s": [r["ttft_s"] for r in ok]}


async def burst(url: str, n: int, max_tokens: int) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=300,
                                 limits=httpx.Limits(max_connections=n + 4)) as client:
        results = await asyncio.gather(*[one_request(client, p, max_tokens) for p in prompts(n, seed=9)],
                                       return_exceptions=True)
    statuses = [r["status"] if isinstance(r, dict) else f"error: {r!r}" for r in results]
    return {"requests": n, "answered": statuses.count(200), "refused_503": statuses.count(503),
            "other": [s for s in statuses if s not in (200, 503)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--requests-per-worker", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--burst", type=int, default=48)
    ap.add_argument("--small-queue", type=int, default=8)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    small = small_model_name()
    mb = ["--max-batch", str(args.max_batch)]
    configs = {
        "fp32 batched": ("gpt-char-jargon", *mb),
        "fp32 unbatched": ("gpt-char-jargon", "--max-batch", "1"),
        "int8 batched": ("gpt-char-jargon", "--int8", *mb),
        "small batched": (small, *mb),
    }
    load_before = os.getloadavg()[0]
    wall = time.perf_counter()
    servers = {}
    try:
        for label, argv in configs.items():
            servers[label] = start_server(*argv)
            print(f"started {label}: {servers[label][1]}", flush=True)
        runs = {label: [] for label in configs}
        for rnd in range(args.rounds):
            for label, (_, url) in servers.items():
                levels = [asyncio.run(closed_loop(url, c, args.requests_per_worker, args.max_tokens,
                                                  seed=100 * rnd + c)) for c in args.concurrency]
                runs[label].append(levels)
                print(f"round {rnd} {label}: " + ", ".join(
                    f"c={lv['concurrency']} {lv['throughput_tok_s']:.0f} tok/s" for lv in levels), flush=True)
        overload_proc, overload_url = start_server("gpt-char-jargon", *mb, "--max-queue",
                                                   str(args.small_queue))
        try:
            overload = asyncio.run(burst(overload_url, args.burst, args.max_tokens))
        finally:
            overload_proc.terminate()
            overload_proc.wait(30)
        print("overload:", overload, flush=True)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            proc.wait(30)
    record = {
        "command": "python benchmarks/serve_load.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "loadavg_1min_before": load_before,
                    "loadavg_1min_after": os.getloadavg()[0]},
        "torch": torch.__version__, "threads_per_server": 1,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "small_model": small, "configs": {k: list(v) for k, v in configs.items()},
        "runs": runs, "overload": overload, "wall_seconds": time.perf_counter() - wall,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
