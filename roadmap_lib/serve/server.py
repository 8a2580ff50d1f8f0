"""Running the app: a zoo model by name, a server in a background thread, the offline reference.

:func:`running_server` starts uvicorn on ``127.0.0.1`` (a free port unless one is given) in a
thread and yields its base URL; leaving the ``with`` block is a graceful shutdown (every accepted
request is answered first). Tests, the benchmark and the chapter use it; ``python -m roadmap_lib
serve NAME`` runs the same app in the foreground (:func:`main`).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from contextlib import contextmanager

import torch

from ..generation import greedy, sample
from ..quantization.linear import quantize_model
from ..zoo import load_char_gpt
from .app import create_app


def zoo_model(name: str = "gpt-char-jargon", *, int8: bool = False):
    """``(model, tokenizer)`` of a shipped character-level GPT; ``int8=True`` quantises its linear
    layers to int8 (round-to-nearest, per output channel: chapter 14; lm_head stays fp32)."""
    model, vocab, _ = load_char_gpt(name)
    if int8:
        quantize_model(model, "rtn", bits=8)
    return model.eval(), vocab


def reference_completion(model, tokenizer, prompt: str, max_tokens: int, *, temperature: float = 0.0,
                         top_p: float = 1.0, seed: int | None = None) -> str:
    """What the server must answer, computed offline for one request alone (greedy or sampled with
    :mod:`roadmap_lib.generation`, KV cache on)."""
    ids = tokenizer.encode(prompt)[None]
    if temperature == 0:
        out = greedy(model, ids, max_tokens, use_cache=True)
    else:
        g = torch.Generator().manual_seed(0 if seed is None else seed)
        out = sample(model, ids, max_tokens, temperature=temperature, top_p=top_p, generator=g,
                     use_cache=True)
    return tokenizer.decode(out[0, ids.shape[1]:].tolist())


@contextmanager
def running_server(app, *, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 20.0):
    """Serve ``app`` with uvicorn in a thread; yield ``(base_url, server)``. On exit: graceful
    shutdown (uvicorn finishes open requests, the lifespan drains the batcher), bounded by
    ``timeout_s``."""
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"host: running_server binds loopback only, got {host!r}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=timeout_s,
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="uvicorn")
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server: uvicorn did not start (see its log above)")
            time.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}", server
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"server: did not shut down within {timeout_s} s")


def run_async(coro):
    """Run a coroutine to completion and return its result, from a script or from a notebook.

    ``asyncio.run`` refuses to start inside a running event loop, which is where a Jupyter cell
    runs; there the coroutine runs in a fresh thread with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def main(argv: list[str] | None = None) -> int:
    """``python -m roadmap_lib serve NAME [--host 127.0.0.1] [--port 8000] [--int8] ...``"""
    p = argparse.ArgumentParser(prog="python -m roadmap_lib serve",
                                description="serve a zoo model with an OpenAI-style /v1/completions")
    p.add_argument("name", help="a character-level GPT from the zoo, e.g. gpt-char-jargon")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--int8", action="store_true", help="quantise the linear layers to int8 first")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--max-queue", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(argv)
    import uvicorn

    torch.set_num_threads(args.threads)
    try:
        model, vocab = zoo_model(args.name, int8=args.int8)
    except FileNotFoundError as err:
        print(f"error: {err}")
        return 2
    app = create_app(model, vocab, model_name=args.name, max_batch=args.max_batch,
                     max_wait_ms=args.max_wait_ms, max_queue=args.max_queue)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


__all__ = ["main", "reference_completion", "run_async", "running_server", "zoo_model"]
