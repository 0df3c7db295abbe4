"""Ollama's answers in OpenAI's shapes: whole bodies (chat.completion,
text_completion, embeddings list, errors) and NDJSON streams as SSE chunks.

Pure code: no I/O, no clock, no randomness. Ids and the fallback creation time
come in the `Reply` the adapter builds for each request.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from sparkplane.backends.base import Operation
from sparkplane.errors import SparkplaneError

DONE = b"data: [DONE]\n\n"

# OpenAI error `type` and `code` for an engine's HTTP status.
_ERROR_KINDS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("not_found_error", "not_found"),
    413: ("invalid_request_error", "payload_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


class _Malformed(ValueError):
    """Ollama answered 200 with a body that is not what its API documents."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What translating an answer needs to know about its request."""

    op: Operation
    model: str  # the name the client used, echoed in every answer
    token: str  # unique per request: ids are built from it
    created: int  # epoch seconds, used when Ollama gives no created_at
    include_usage: bool = False  # stream_options.include_usage
    echo: str | None = None  # completions with echo: the prompt to put first
    base64: bool = False  # embeddings asked with encoding_format "base64"

    @property
    def ident(self) -> str:
        """The answer's id: `chatcmpl-...` for chat, `cmpl-...` for completions."""
        prefix = "chatcmpl-" if self.op is Operation.CHAT else "cmpl-"
        return prefix + self.token


def reply_for(op: Operation, payload: dict[str, Any], *, token: str, now: float) -> Reply:
    """The `Reply` for a client's OpenAI request body."""
    stream_options = payload.get("stream_options")
    include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
    echo = None
    if op is Operation.COMPLETION and payload.get("echo"):
        prompt = payload.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        echo = prompt if isinstance(prompt, str) else None
    return Reply(
        op=op,
        model=str(payload.get("model", "")),
        token=token,
        created=int(now),
        include_usage=include_usage,
        echo=echo,
        base64=op is Operation.EMBEDDING and payload.get("encoding_format") == "base64",
    )


def answer(reply: Reply, status: int, body: bytes) -> tuple[int, bytes]:
    """A whole Ollama answer (success or error) as an OpenAI status and JSON body."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if status >= 400 or (isinstance(doc, dict) and "error" in doc):
        status = status if status >= 400 else 502
        return status, orjson.dumps(error_document(status, _error_text(doc, body, status)))
    try:
        if not isinstance(doc, dict):
            raise _Malformed("not a JSON object")
        if reply.op is Operation.CHAT:
            result = chat_completion(reply, doc)
        elif reply.op is Operation.COMPLETION:
            result = text_completion(reply, doc)
        else:
            result = embeddings(reply, doc)
    except _Malformed as exc:
        return 502, orjson.dumps(error_document(502, f"Ollama sent a malformed answer: {exc}"))
    return 200, orjson.dumps(result)


def chat_completion(reply: Reply, doc: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI `chat.completion` from Ollama's /api/chat answer."""
    message = doc.get("message")
    message = message if isinstance(message, dict) else {}
    text = str(message.get("content") or "")
    calls = tool_calls(message.get("tool_calls"), reply.token)
    # OpenAI sends null content, not "", beside tool calls.
    out: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        out["tool_calls"] = calls
    if message.get("thinking"):
        out["reasoning_content"] = str(message["thinking"])
    choice = {
        "index": 0,
        "message": out,
        "logprobs": None,
        "finish_reason": finish_reason(doc.get("done_reason"), bool(calls)),
    }
    return {
        "id": reply.ident,
        "object": "chat.completion",
        "created": created_at(doc.get("created_at"), reply.created),
        "model": reply.model,
        "choices": [choice],
        "usage": usage(doc),
    }


def text_completion(reply: Reply, doc: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI `text_completion` from Ollama's /api/generate answer."""
    text = str(doc.get("response") or "")
    if reply.echo is not None:
        text = reply.echo + text
    choice = {
        "index": 0,
        "text": text,
        "logprobs": None,
        "finish_reason": finish_reason(doc.get("done_reason"), False),
    }
    return {
        "id": reply.ident,
        "object": "text_completion",
        "created": created_at(doc.get("created_at"), reply.created),
        "model": reply.model,
        "choices": [choice],
        "usage": usage(doc),
    }


def embeddings(reply: Reply, doc: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI embeddings list from Ollama's /api/embed answer."""
    vectors = doc.get("embeddings")
    if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
        raise _Malformed("no 'embeddings' list")
    data = [
        {"object": "embedding", "index": i, "embedding": _vector(v, reply.base64)}
        for i, v in enumerate(vectors)
    ]
    tokens = _count(doc.get("prompt_eval_count"))
    return {
        "object": "list",
        "data": data,
        "model": reply.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def tool_calls(value: object, token: str, first: int = 0) -> list[dict[str, Any]]:
    """Ollama tool calls in OpenAI's shape: ids made from `token` and the call's
    number (`first` onwards), arguments as a JSON string."""
    out: list[dict[str, Any]] = []
    for call in value if isinstance(value, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments).decode()
        out.append(
            {
                "id": f"call_{token}_{first + len(out)}",
                "type": "function",
                "function": {"name": str(function.get("name", "")), "arguments": arguments},
            }
        )
    return out


def finish_reason(done_reason: object, called_tools: bool) -> str:
    """OpenAI's finish_reason from Ollama's done_reason ("stop", "length", "load"...)."""
    if done_reason == "length":
        return "length"
    return "tool_calls" if called_tools else "stop"


def usage(doc: dict[str, Any]) -> dict[str, int]:
    """OpenAI usage from Ollama's prompt_eval_count and eval_count."""
    prompt = _count(doc.get("prompt_eval_count"))
    completion = _count(doc.get("eval_count"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def created_at(value: object, fallback: int) -> int:
    """Epoch seconds of Ollama's RFC 3339 `created_at` (nanoseconds and offsets
    included); `fallback` when it is missing or unreadable."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = int(moment.timestamp())
        # Go's zero time (year 1) means "not set".
        return seconds if seconds > 0 else fallback
    return fallback


def error_document(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error body for an engine error with HTTP `status`."""
    type_, code = _ERROR_KINDS.get(status, ("invalid_request_error", "http_error"))
    if status >= 500:
        type_, code = "upstream_error", "upstream_error"
    elif status == 404 and "model" in message and "not found" in message:
        type_, code, param = "invalid_request_error", "model_not_found", "model"
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def exception_body(exc: SparkplaneError) -> bytes:
    """OpenAI's error body for one of sparkplane's own errors."""
    error = {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}
    return orjson.dumps({"error": error})


def sse(doc: dict[str, Any]) -> bytes:
    """One server-sent event carrying `doc`."""
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def _error_text(doc: object, body: bytes, status: int) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"]:
        return str(doc["error"])
    text = body.decode("utf-8", "replace").strip()[:500]
    return text or f"Ollama answered HTTP {status}"


def _vector(values: list[Any], as_base64: bool) -> list[float] | str:
    floats = [float(v) for v in values]
    if not as_base64:
        return floats
    # OpenAI's base64 encoding: the little-endian float32 array.
    return base64.b64encode(struct.pack(f"<{len(floats)}f", *floats)).decode()


def _count(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
