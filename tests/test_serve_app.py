"""The HTTP server end to end, on 127.0.0.1, started and stopped by each test (a few seconds each:
they decode real requests with the zoo's character GPT).

- concurrent requests get complete answers, equal to decoding each request alone offline;
- malformed requests get a 4xx whose message names the field, and the server keeps serving;
- streaming yields the same text as a plain request, one chunk per token;
- a full queue refuses with 503, and every request gets an answer or a refusal;
- a graceful shutdown answers every request it had accepted.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from roadmap_lib.serve import create_app, reference_completion, running_server, zoo_model

PROMPTS = ["The hacker ", "A kludge is", "foo bar", "In the old days ", "Unix", "bug: n."]


@pytest.fixture(scope="module")
def model_vocab():
    return zoo_model("gpt-char-jargon")


def app_for(model_vocab, **kw):
    model, vocab = model_vocab
    return create_app(model, vocab, model_name="gpt-char-jargon", **kw)


def post_all(url, bodies, timeout=60.0):
    async def go():
        async with httpx.AsyncClient(base_url=url, timeout=timeout) as c:
            return await asyncio.gather(*[c.post("/v1/completions", json=b) for b in bodies])

    return asyncio.run(go())


def text_of(response) -> str:
    return response.json()["choices"][0]["text"]


@pytest.mark.slow
def test_concurrent_requests_equal_offline_decoding(model_vocab):
    """About 5 s: eight real requests through the server, then each decoded alone offline."""
    model, vocab = model_vocab
    bodies = [{"prompt": p, "max_tokens": 6 + 2 * i} for i, p in enumerate(PROMPTS)]
    bodies += [{"prompt": "The ", "max_tokens": 12, "temperature": 0.8, "top_p": 0.9, "seed": s}
               for s in (1, 2)]
    app = app_for(model_vocab, max_batch=4, max_wait_ms=20)
    with running_server(app) as (url, _):
        responses = post_all(url, bodies)
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
    for body, r in zip(bodies, responses):
        assert r.status_code == 200, r.text
        ref = reference_completion(model, vocab, body["prompt"], body["max_tokens"],
                                   temperature=body.get("temperature", 0.0),
                                   top_p=body.get("top_p", 1.0), seed=body.get("seed"))
        assert text_of(r) == ref
        assert r.json()["usage"]["completion_tokens"] == body["max_tokens"]
    assert text_of(responses[-1]) != text_of(responses[-2])  # two seeds, two samples
    mean_batch = float(next(line for line in metrics.splitlines()
                            if line.startswith("serve_mean_batch_size")).split()[1])
    assert mean_batch > 1.5  # the requests really were decoded together
    assert 'serve_requests_total{status="200"} 8' in metrics


BAD = [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (json.dumps({"max_tokens": 4}).encode(), 400, "prompt"),
    (json.dumps({"prompt": ""}).encode(), 400, "prompt"),
    (json.dumps({"prompt": "x" * 65}).encode(), 400, "prompt"),
    (json.dumps({"prompt": "\u4e00 not in the vocabulary"}).encode(), 400, "prompt"),
    (json.dumps({"prompt": "x", "max_tokens": 0}).encode(), 400, "max_tokens"),
    (json.dumps({"prompt": "x", "max_tokens": "ten"}).encode(), 400, "max_tokens"),
    (json.dumps({"prompt": "x" * 40, "max_tokens": 40}).encode(), 400, "max_tokens"),
    (json.dumps({"prompt": "x", "temperature": -1}).encode(), 400, "temperature"),
    (json.dumps({"prompt": "x", "top_p": 0}).encode(), 400, "top_p"),
    (json.dumps({"prompt": "x", "seed": -3}).encode(), 400, "seed"),
    (json.dumps({"prompt": "x", "stream": "yes"}).encode(), 400, "stream"),
    (json.dumps({"prompt": "x", "best_of": 3}).encode(), 400, "best_of"),
    (json.dumps({"prompt": "x", "model": "gpt-4"}).encode(), 404, "model"),
]


def test_malformed_requests_get_4xx_naming_the_field(model_vocab):
    with running_server(app_for(model_vocab)) as (url, _):
        with httpx.Client(base_url=url, timeout=10) as c:
            for raw, status, field in BAD:
                r = c.post("/v1/completions", content=raw,
                           headers={"content-type": "application/json"})
                assert r.status_code == status, (raw, r.text)
                err = r.json()["error"]
                assert err["param"] == field, (raw, err)
                assert err["message"].startswith(f"{field or 'body'}:"), (raw, err)
            assert c.get("/health").json()["status"] == "ok"  # still serving
            ok = c.post("/v1/completions", json={"prompt": "x", "max_tokens": 64})
            assert ok.status_code == 200  # the longest request that fits: 1 + 64 <= 64 + 1


def test_streaming_yields_the_same_tokens_as_non_streaming(model_vocab):
    body = {"prompt": "The hacker ", "max_tokens": 20}
    with running_server(app_for(model_vocab)) as (url, _):
        with httpx.Client(base_url=url, timeout=30) as c:
            plain = text_of(c.post("/v1/completions", json=body))
            with c.stream("POST", "/v1/completions", json={**body, "stream": True}) as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[len("data: "):]) for ln in lines[:-1]]
    pieces = [ch["choices"][0]["text"] for ch in chunks]
    assert len(pieces) == body["max_tokens"] + 1  # one chunk per token, then the final one
    assert "".join(pieces) == plain
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == body["max_tokens"]


def test_a_full_queue_refuses_with_503_and_nothing_is_lost(model_vocab):
    model, vocab = model_vocab
    app = app_for(model_vocab, max_batch=1, max_wait_ms=0, max_queue=2)
    bodies = [{"prompt": p, "max_tokens": 16} for p in PROMPTS * 2]
    with running_server(app) as (url, _):
        responses = post_all(url, bodies)
    codes = [r.status_code for r in responses]
    # at least the queue's places are answered (more if the batcher took some off it in time)
    assert set(codes) <= {200, 503} and codes.count(503) >= 1 and codes.count(200) >= 2
    for body, r in zip(bodies, responses):
        if r.status_code == 503:
            assert "queue is full" in r.json()["error"]["message"]
        else:
            assert text_of(r) == reference_completion(model, vocab, body["prompt"], 16)
    assert app.state.batcher.stats["refused_full"] == codes.count(503)


@pytest.mark.slow
def test_graceful_shutdown_answers_every_accepted_request(model_vocab):
    """About 5 s: requests in flight when the server is told to stop."""
    model, vocab = model_vocab
    app = app_for(model_vocab, max_batch=2, max_wait_ms=0)
    bodies = [{"prompt": p, "max_tokens": 24} for p in PROMPTS[:4]]
    with running_server(app) as (url, server):
        async def go():
            async with httpx.AsyncClient(base_url=url, timeout=60) as c:
                tasks = [asyncio.create_task(c.post("/v1/completions", json=b)) for b in bodies]
                deadline = time.monotonic() + 30
                while app.state.batcher.stats["accepted"] < len(bodies):
                    assert time.monotonic() < deadline, "the requests were never accepted"
                    await asyncio.sleep(0.005)
                server.should_exit = True  # what SIGINT/SIGTERM does
                return await asyncio.gather(*tasks)

        responses = asyncio.run(go())
    stats = app.state.batcher.stats
    assert stats["completed"] == stats["accepted"] == len(bodies)
    for body, r in zip(bodies, responses):
        assert r.status_code == 200
        assert text_of(r) == reference_completion(model, vocab, body["prompt"], 24)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)
