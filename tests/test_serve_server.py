"""Running the server: loopback only, the int8 variant, the offline reference, the command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch

from roadmap_lib.generation import greedy
from roadmap_lib.quantization.linear import QuantizedLinear
from roadmap_lib.serve import main, reference_completion, running_server, zoo_model

ROOT = Path(__file__).resolve().parent.parent


def test_zoo_model_and_its_int8_variant():
    model, vocab = zoo_model("gpt-char-jargon")
    q, _ = zoo_model("gpt-char-jargon", int8=True)
    assert not any(isinstance(m, QuantizedLinear) for m in model.modules())
    linears = sum(isinstance(m, torch.nn.Linear) for n, m in model.named_modules() if n != "lm_head")
    assert sum(isinstance(m, QuantizedLinear) for m in q.modules()) == linears
    ids = vocab.encode("The hacker ")[None]
    with torch.no_grad():
        gap = (model(ids) - q(ids)).abs().max().item()
    assert 0 < gap < 0.5  # int8 rounding moves the logits a little, not a lot


def test_reference_completion_is_greedy_decoding():
    model, vocab = zoo_model("gpt-char-jargon")
    ids = vocab.encode("Unix ")[None]
    want = vocab.decode(greedy(model, ids, 9)[0, ids.shape[1]:].tolist())
    assert reference_completion(model, vocab, "Unix ", 9) == want
    a = reference_completion(model, vocab, "Unix ", 9, temperature=1.0, seed=3)
    assert a == reference_completion(model, vocab, "Unix ", 9, temperature=1.0, seed=3)


def test_running_server_binds_loopback_only():
    with pytest.raises(ValueError, match="host"):
        with running_server(object(), host="0.0.0.0"):
            pass


def test_unknown_model_is_a_usage_error(capsys):
    assert main(["no-such-model", "--port", "1"]) == 2
    assert "no-such-model" in capsys.readouterr().out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_command_line_serves_and_stops_on_sigint():
    """About 5 s: `python -m roadmap_lib serve` in a subprocess (imports, model load, one request)."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "roadmap_lib", "serve", "gpt-char-jargon",
                             "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the server did not come up in 60 s"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health.json()["model"] == "gpt-char-jargon"
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions",
                       json={"prompt": "Unix ", "max_tokens": 5}, timeout=30)
        assert r.status_code == 200 and len(r.json()["choices"][0]["text"]) == 5
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_run_async_works_inside_a_running_loop():
    import asyncio

    from roadmap_lib.serve import run_async

    async def answer():
        return 42

    async def inside():  # like a Jupyter cell: a loop is already running
        return run_async(answer())

    assert run_async(answer()) == 42
    assert asyncio.run(inside()) == 42
