"""The request and response bodies of ``POST /v1/completions`` (the OpenAI completions API shape).

Validation happens here, before a request reaches the queue: a wrong type, a value out of range or
an unknown field is a 400 whose message names the field (``"max_tokens: ..."``), never a crash.
Only what our models can do is accepted: one prompt string, ``n = 1``, no ``stop`` sequences.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CompletionRequest(BaseModel):
    """``prompt`` is text in the model's vocabulary; ``temperature = 0`` means greedy decoding."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, max_length=4096)
    max_tokens: int = Field(default=16, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=10.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stream: bool = False
    model: str | None = None  # accepted for client compatibility; must name the served model


def completion_body(*, request_id: str, created: int, model: str, text: str,
                    prompt_tokens: int, completion_tokens: int, finish_reason: str | None) -> dict:
    """A non-streaming response, or (``finish_reason=None``, no usage) one streamed chunk."""
    body = {"id": request_id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish_reason}]}
    if finish_reason is not None:
        body["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                         "total_tokens": prompt_tokens + completion_tokens}
    return body


def error_body(message: str, param: str | None, kind: str = "invalid_request_error") -> dict:
    """OpenAI's error shape: ``{"error": {"message", "type", "param"}}``."""
    return {"error": {"message": message, "type": kind, "param": param}}


__all__ = ["CompletionRequest", "completion_body", "error_body"]
