"""Ollama answers and stream lines shaped as Ollama's docs show them, for the unit tests."""

from __future__ import annotations

import calendar
from typing import Any

import orjson

from sparkplane.backends.base import Operation
from sparkplane.backends.ollama_reply import Reply

WHEN = "2024-07-22T20:47:51.147561234Z"
WHEN_EPOCH = calendar.timegm((2024, 7, 22, 20, 47, 51))


def reply(op: Operation, **fields: Any) -> Reply:
    """A request's reply context: the client said "client-name", ids end in "t0k"."""
    values: dict[str, Any] = {"model": "client-name", "token": "t0k", "created": 1_700_000_000}
    values.update(fields)
    return Reply(op=op, **values)


def events(data: bytes) -> list[Any]:
    """Parsed SSE events: JSON documents, and the string "[DONE]"."""
    out: list[Any] = []
    for block in data.split(b"\n\n"):
        if not block:
            continue
        assert block.startswith(b"data: ")
        text = block[len(b"data: ") :]
        out.append("[DONE]" if text == b"[DONE]" else orjson.loads(text))
    return out


def ndjson(*docs: dict[str, Any]) -> bytes:
    """Documents as Ollama streams them: one JSON object a line."""
    return b"".join(orjson.dumps(d) + b"\n" for d in docs)


def chat_line(content: str = "", **extra: Any) -> dict[str, Any]:
    """A not-done /api/chat stream line; `message=` adds message fields."""
    message = {"role": "assistant", "content": content, **extra.pop("message", {})}
    return {"model": "llama3.2", "created_at": WHEN, "message": message, "done": False, **extra}


def chat_done(reason: str = "stop", prompt: int = 26, generated: int = 4) -> dict[str, Any]:
    """The final /api/chat line, with its counts."""
    return {
        "model": "llama3.2",
        "created_at": WHEN,
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": reason,
        "prompt_eval_count": prompt,
        "eval_count": generated,
    }
