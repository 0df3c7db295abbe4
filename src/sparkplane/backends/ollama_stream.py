"""Ollama's NDJSON streams as OpenAI's server-sent events. Pure: bytes in, bytes out."""

from __future__ import annotations

from typing import Any

import orjson

from sparkplane.backends.base import Operation
from sparkplane.backends.ollama_reply import (
    DONE,
    Reply,
    created_at,
    error_document,
    finish_reason,
    sse,
    tool_calls,
    usage,
)


class StreamTranslator:
    """Turns one Ollama stream into OpenAI chunks, a network read at a time.

    `feed()` takes bytes as they arrive (a line may be split anywhere, or many
    lines come at once) and returns the SSE bytes ready to send, possibly none.
    `end()` reads a last line that had no newline. Once Ollama says `done`, the
    output closes with the finish_reason chunk, a usage chunk when the client
    asked for one, and `data: [DONE]`; an `{"error": ...}` line (or one that is
    not JSON) closes it with an OpenAI error event and `[DONE]`. Either way
    `finished` turns true and later input is ignored.
    """

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._pending = bytearray()
        self._created = reply.created
        self._dated = False  # _created was read from the first line
        self._started = False  # a first chunk went out (chat: the one with the role)
        self._calls = 0  # tool calls sent so far, for their indices and ids
        self.finished = False
        self.failed = False

    def feed(self, data: bytes) -> bytes:
        """SSE bytes for the complete lines `data` ends (with what came before)."""
        if self.finished:
            return b""
        self._pending += data
        cut = self._pending.rfind(b"\n")
        if cut < 0:
            return b""
        lines = bytes(self._pending[:cut]).split(b"\n")
        del self._pending[: cut + 1]
        return self._lines(lines)

    def end(self) -> bytes:
        """SSE bytes for a last line left without a newline when the stream ended."""
        if self.finished:
            return b""
        line = bytes(self._pending)
        self._pending.clear()
        return self._lines([line])

    def _lines(self, lines: list[bytes]) -> bytes:
        out = bytearray()
        for raw in lines:
            line = raw.strip()
            if line and not self.finished:
                out += self._line(line)
        return bytes(out)

    def _line(self, line: bytes) -> bytes:
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            return self._fail("Ollama sent a stream line that is not a JSON object")
        if "error" in doc:
            return self._fail(str(doc["error"]) or "Ollama reported an error")
        if not self._dated:
            self._dated = True
            self._created = created_at(doc.get("created_at"), self._reply.created)
        chat = self._reply.op is Operation.CHAT
        events = self._chat(doc) if chat else self._completion(doc)
        if doc.get("done") is True:
            events += self._close(doc)
        out = b"".join(sse(e) for e in events)
        return out + DONE if self.finished else out

    def _chat(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        message = doc.get("message")
        message = message if isinstance(message, dict) else {}
        delta: dict[str, Any] = {}
        if message.get("content"):
            delta["content"] = str(message["content"])
        if message.get("thinking"):
            delta["reasoning_content"] = str(message["thinking"])
        calls = tool_calls(message.get("tool_calls"), self._reply.token, self._calls)
        if calls:
            delta["tool_calls"] = [{"index": self._calls + i, **c} for i, c in enumerate(calls)]
            self._calls += len(calls)
        if not delta and (self._started or doc.get("done") is True):
            return []
        return [self._chat_chunk(delta, None)]

    def _completion(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        text = str(doc.get("response") or "")
        if not self._started:
            self._started = True
            text = (self._reply.echo or "") + text
        return [self._completion_chunk(text, None)] if text else []

    def _close(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        self.finished = True
        reason = finish_reason(doc.get("done_reason"), self._calls > 0)
        if self._reply.op is Operation.CHAT:
            events = [self._chat_chunk({}, reason)]
        else:
            events = [self._completion_chunk("", reason)]
        if self._reply.include_usage:
            events.append({**self._head(), "choices": [], "usage": usage(doc)})
        return events

    def _chat_chunk(self, delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
        if not self._started:
            self._started = True
            delta = {"role": "assistant", **delta}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return {**self._head(), "choices": [choice]}

    def _completion_chunk(self, text: str, reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        return {**self._head(), "choices": [choice]}

    def _head(self) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self._reply.op is Operation.CHAT else "text_completion"
        return {
            "id": self._reply.ident,
            "object": kind,
            "created": self._created,
            "model": self._reply.model,
        }

    def _fail(self, message: str) -> bytes:
        self.finished = True
        self.failed = True
        return sse(error_document(500, message)) + DONE
