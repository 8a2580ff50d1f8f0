"""The HTTP server: a FastAPI app with an OpenAI-style ``/v1/completions``, ``/health`` and ``/metrics``.

    POST /v1/completions  {"prompt": "...", "max_tokens": 16, "temperature": 0, "top_p": 1,
                           "seed": null, "stream": false}
        -> 200 {"choices": [{"text": ..., "finish_reason": "length"}], "usage": {...}}
        -> 200 text/event-stream: "data: {chunk}\\n\\n" per token, then "data: [DONE]\\n\\n"
        -> 400 {"error": {"message": "max_tokens: ...", "param": "max_tokens"}} for a bad request
        -> 503 when the queue is full or the server is shutting down (the client may retry)
    GET /health   -> {"status": "ok", "model": ..., "waiting": n, "running": n}
    GET /metrics  -> Prometheus text: requests by status, tokens, steps, mean batch size, queue depth

Every request is a :class:`~roadmap_lib.serve.batcher.Job` for the one
:class:`~roadmap_lib.serve.batcher.Batcher` that owns the model (started and stopped with the
app's lifespan). Stopping the app is graceful: uvicorn stops accepting connections and waits for
open requests; the batcher then finishes every job it accepted.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import ValidationError

from .batcher import Batcher, Job, QueueFull, ShuttingDown
from .schemas import CompletionRequest, completion_body, error_body


def _error(status: int, message: str, param: str | None, kind: str = "invalid_request_error"):
    return JSONResponse(error_body(message, param, kind), status_code=status)


def _validation_message(err: ValidationError) -> tuple[str, str | None]:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    if first["type"] == "extra_forbidden":
        return f"{field}: unknown field (expected one of {sorted(CompletionRequest.model_fields)})", field
    got = first.get("input")
    got = "missing" if first["type"] == "missing" else f"got {json.dumps(got)[:60]}"
    return f"{field}: {first['msg'].lower()}, {got}", field


def create_app(model, tokenizer, *, model_name: str = "model", max_batch: int = 8,
               max_wait_ms: float = 5.0, max_queue: int = 64) -> FastAPI:
    """A FastAPI app serving ``model`` (one of our GPTs) with ``tokenizer`` (``encode(text) -> ids``,
    raising ``ValueError`` on text it cannot encode; ``decode(ids) -> text``)."""
    batcher = Batcher(model, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue)
    responses: Counter[int] = Counter()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title=f"roadmap_lib serve: {model_name}", lifespan=lifespan)
    app.state.batcher = batcher

    @app.middleware("http")
    async def count_status(request: Request, call_next):
        response = await call_next(request)
        if request.url.path == "/v1/completions":
            responses[response.status_code] += 1
        return response

    @app.get("/health")
    async def health():
        status = "shutting_down" if batcher.closing else "ok"
        return {"status": status, "model": model_name, "waiting": batcher.waiting,
                "running": len(batcher.running)}

    @app.get("/metrics")
    async def metrics():
        s = batcher.stats
        lines = ["# TYPE serve_requests_total counter"]
        lines += [f'serve_requests_total{{status="{code}"}} {n}' for code, n in sorted(responses.items())]
        lines += [
            "# TYPE serve_tokens_generated_total counter", f"serve_tokens_generated_total {s['tokens']}",
            "# TYPE serve_batch_steps_total counter", f"serve_batch_steps_total {s['steps']}",
            "# TYPE serve_mean_batch_size gauge",
            f"serve_mean_batch_size {s['batched_sequences'] / max(s['steps'], 1):.4f}",
            "# TYPE serve_queue_depth gauge", f"serve_queue_depth {batcher.waiting}",
            "# TYPE serve_running gauge", f"serve_running {len(batcher.running)}",
            "# TYPE serve_refused_total counter",
            f'serve_refused_total{{reason="queue_full"}} {s["refused_full"]}',
            f'serve_refused_total{{reason="shutting_down"}} {s["refused_closing"]}',
        ]
        return PlainTextResponse("\n".join(lines) + "\n")

    @app.post("/v1/completions")
    async def completions(request: Request):
        raw = await request.body()
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return _error(400, f"body: expected a JSON object, got invalid JSON ({err})", None)
        if not isinstance(data, dict):
            return _error(400, f"body: expected a JSON object, got a {type(data).__name__}", None)
        try:
            req = CompletionRequest.model_validate(data)
        except ValidationError as err:
            return _error(400, *_validation_message(err))
        if req.model not in (None, model_name):
            return _error(404, f"model: this server serves {model_name!r}, got {req.model!r}",
                          "model", "model_not_found")
        try:
            prompt = tokenizer.encode(req.prompt)
        except ValueError as err:
            return _error(400, f"prompt: cannot be encoded by the model's tokenizer ({err})", "prompt")
        prompt = [int(t) for t in prompt]
        job = Job(prompt, req.max_tokens, req.temperature, req.top_p, req.seed)
        try:
            batcher.submit(job)
        except ValueError as err:
            field = str(err).split(":")[0]
            return _error(400, str(err), field)
        except (QueueFull, ShuttingDown) as err:
            return _error(503, str(err), None, "server_overloaded")
        rid, created = f"cmpl-{uuid.uuid4().hex[:16]}", int(time.time())

        def body(text: str, n: int, finish: str | None) -> dict:
            return completion_body(request_id=rid, created=created, model=model_name, text=text,
                                   prompt_tokens=len(prompt), completion_tokens=n,
                                   finish_reason=finish)

        if not req.stream:
            while (event := await job.events.get()) is not None:
                if isinstance(event, Exception):
                    return _error(500, f"generation failed: {event}", None, "server_error")
            return JSONResponse(body(tokenizer.decode(job.tokens), len(job.tokens), "length"))

        async def events():
            tokens, sent = [], ""
            while (event := await job.events.get()) is not None:
                if isinstance(event, Exception):
                    yield f"data: {json.dumps(error_body(str(event), None, 'server_error'))}\n\n"
                    return
                tokens.append(event)
                text = tokenizer.decode(tokens)
                chunk = body(text[len(sent):], len(tokens), None)
                sent = text
                yield f"data: {json.dumps(chunk)}\n\n"
            yield f"data: {json.dumps(body('', len(tokens), 'length'))}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


__all__ = ["create_app"]
