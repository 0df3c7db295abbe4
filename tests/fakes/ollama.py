"""A fake Ollama server following Ollama's documented native API (docs/api.md):
`GET /api/version`, `GET /api/tags`, `GET /api/ps`, `POST /api/chat` and
`POST /api/generate` (NDJSON streams unless `"stream": false`; naming only a
model loads it, with `keep_alive: 0` unloads it), `POST /api/embed`. Errors come
as Ollama sends them: `{"error": "..."}` with an HTTP status, or as an error line
inside a 200 stream. Knobs make it slow, fail, hang, break or split its stream;
its memory (sizes, capacity, loaded-model limit, load time, LRU eviction of idle
models) is in `ollama_memory`. Every request it received is kept in `requests`,
every residency change in `memory.events`, every inference in `memory.runs`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.loopback import LoopbackServer
from tests.fakes.ollama_memory import (
    KeepAliveError,
    Memory,
    MemoryKnobs,
    NoRoom,
    Run,
    keep_alive_seconds,
    timestamp,
)


@dataclass
class OllamaBehaviour:
    """What the fake does; tests change these fields while it runs."""

    models: list[str] = field(default_factory=lambda: ["llama3.2:latest", "all-minilm:latest"])
    version: str = "0.12.6"
    reply: str = "hello from the fake ollama"
    thinking: str | None = None  # sent as message.thinking before the reply
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # answered when tools are given
    done_reason: str = "stop"
    created_at: str | None = None  # fixed created_at; None for the current time
    delay_s: float = 0.0  # before the head of every inference answer
    chunk_delay_s: float = 0.0  # between stream lines
    chunks: int = 4
    fail_status: int | None = None  # answer every inference with this status
    fail_message: str = "llama runner process has terminated: exit status 2"
    hang: bool = False  # accept, then never answer
    break_stream_after: int | None = None  # drop the connection after N lines
    error_after: int | None = None  # send an {"error"} line after N lines, then end
    error_message: str = "an error was encountered while running the model"
    split_lines: bool = False  # write every line in two pieces, cut mid-JSON
    embedding_dim: int = 8
    memory: MemoryKnobs = field(default_factory=MemoryKnobs)


@dataclass(frozen=True)
class Checked:
    """A request that passed the common checks."""

    body: dict[str, Any]
    name: str  # as the client wrote it
    full: str  # with its tag
    keep_alive_s: float

    def fields(self) -> tuple[dict[str, Any], str, str, float]:
        """body, name, full, keep_alive_s."""
        return self.body, self.name, self.full, self.keep_alive_s


@dataclass
class Received:
    """One inference request as the fake received it."""

    path: str
    body: dict[str, Any]


class FakeOllama(LoopbackServer):
    """Run with `async with FakeOllama() as ollama:`; `ollama.url` is its base URL."""

    def __init__(self, behaviour: OllamaBehaviour | None = None) -> None:
        self.behaviour = behaviour or OllamaBehaviour()
        self.requests: list[Received] = []
        self.memory = Memory(self.behaviour.memory)
        super().__init__()

    @property
    def last(self) -> Received:
        """The latest inference request."""
        return self.requests[-1]

    def routes(self, app: web.Application) -> None:
        """Ollama's endpoints."""
        app.router.add_get("/api/version", self._version)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_get("/api/ps", self._ps)
        app.router.add_post("/api/chat", self._chat)
        app.router.add_post("/api/generate", self._generate)
        app.router.add_post("/api/embed", self._embed)

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": self.behaviour.version})

    async def _tags(self, request: web.Request) -> web.Response:
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": "2025-01-02T03:04:05.123456789Z",
                "size": 1_000_000 + i,
                "digest": hashlib.sha256(name.encode()).hexdigest(),
                "details": _details(),
            }
            for i, name in enumerate(self.behaviour.models)
        ]
        return web.json_response({"models": models})

    async def _ps(self, request: web.Request) -> web.Response:
        self.memory.expire()
        models = [
            {
                "name": r.name,
                "model": r.name,
                "size": r.size,
                "digest": hashlib.sha256(r.name.encode()).hexdigest(),
                "details": _details(),
                "expires_at": timestamp(r.expires_at),
                "size_vram": r.size,
                "context_length": 4096,
            }
            for r in self.memory.resident.values()
        ]
        return web.json_response({"models": models})

    async def _control(
        self, name: str, full: str, keep_alive_s: float, extra: dict[str, Any]
    ) -> web.Response:
        """A request naming only a model: load it, or unload it with keep_alive 0."""
        if keep_alive_s == 0:
            self.memory.unload(full)
            reason = "unload"
        else:
            try:
                await self.memory.load(full, keep_alive_s)
            except NoRoom as exc:
                return _error(exc.status, exc.message)
            reason = "load"
        doc = {"model": name, "created_at": self._now(), **extra, "done": True}
        return web.json_response({**doc, "done_reason": reason})

    async def _begin(self, full: str, path: str, keep_alive_s: float) -> Run | web.Response:
        try:
            return await self.memory.begin(full, path, keep_alive_s)
        except NoRoom as exc:
            return _error(exc.status, exc.message)

    async def _prelude(self, request: web.Request) -> Checked | web.Response:
        """Parse, record and check a request; an error response when it fails."""
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "invalid character 'x' looking for beginning of value")
        if not isinstance(body, dict):
            return _error(400, "json: cannot unmarshal array into Go value")
        self.requests.append(Received(request.path, body))
        b = self.behaviour
        if b.hang:
            await asyncio.sleep(3600)
        if b.delay_s:
            await asyncio.sleep(b.delay_s)
        if b.fail_status is not None:
            return _error(b.fail_status, b.fail_message)
        name = body.get("model")
        if not isinstance(name, str) or not name:
            return _error(400, "model is required")
        full = name if ":" in name else f"{name}:latest"
        if full not in b.models:
            return _error(404, f"model '{name}' not found")
        try:
            keep_alive_s = keep_alive_seconds(body.get("keep_alive"))
        except KeepAliveError as exc:
            return _error(400, str(exc))
        return Checked(body, name, full, keep_alive_s)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        checked = await self._prelude(request)
        if isinstance(checked, web.Response):
            return checked
        body, name, full, keep_alive_s = checked.fields()
        if not body.get("messages"):
            empty = {"message": {"role": "assistant", "content": ""}}
            return await self._control(name, full, keep_alive_s, empty)
        if not isinstance(body["messages"], list):
            return _error(400, "messages is required")
        run = await self._begin(full, request.path, keep_alive_s)
        if isinstance(run, web.Response):
            return run
        try:
            return await self._chat_answer(
                request, body, name, lambda: self.memory.end(run, keep_alive_s)
            )
        finally:
            self.memory.end(run, keep_alive_s)

    async def _chat_answer(
        self, request: web.Request, body: dict[str, Any], name: str, done: Callable[[], None]
    ) -> web.StreamResponse:
        words, reason = self._words(body)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        calls = self.behaviour.tool_calls if body.get("tools") else []
        final = self._final(name, reason, prompt_tokens, len(words))
        if body.get("stream", True) is False:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "" if calls else "".join(words),
            }
            if self.behaviour.thinking:
                message["thinking"] = self.behaviour.thinking
            if calls:
                message["tool_calls"] = calls
            return web.json_response({**final, "message": message})
        lines: list[dict[str, Any]] = []
        if self.behaviour.thinking:
            lines.append({"role": "assistant", "content": "", "thinking": self.behaviour.thinking})
        if calls:
            lines.append({"role": "assistant", "content": "", "tool_calls": calls})
        else:
            lines += [{"role": "assistant", "content": w} for w in words]
        docs = [self._line(name, {"message": m}) for m in lines]
        docs.append({**final, "message": {"role": "assistant", "content": ""}})
        return await self._stream(request, docs, done)

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        checked = await self._prelude(request)
        if isinstance(checked, web.Response):
            return checked
        body, name, full, keep_alive_s = checked.fields()
        prompt = body.get("prompt", "")
        if not isinstance(prompt, str):
            return _error(400, "json: cannot unmarshal array into Go struct field .prompt")
        if not prompt and not body.get("images"):
            return await self._control(name, full, keep_alive_s, {"response": ""})
        run = await self._begin(full, request.path, keep_alive_s)
        if isinstance(run, web.Response):
            return run
        try:
            done = lambda: self.memory.end(run, keep_alive_s)  # noqa: E731
            return await self._generate_answer(request, body, name, prompt, done)
        finally:
            self.memory.end(run, keep_alive_s)

    async def _generate_answer(
        self,
        request: web.Request,
        body: dict[str, Any],
        name: str,
        prompt: str,
        done: Callable[[], None],
    ) -> web.StreamResponse:
        words, reason = self._words(body)
        final = self._final(name, reason, len(prompt.split()), len(words))
        if not body.get("raw"):
            final["context"] = [1, 2, 3]
        if body.get("stream", True) is False:
            return web.json_response({**final, "response": "".join(words)})
        docs = [self._line(name, {"response": w}) for w in words]
        docs.append({**final, "response": ""})
        return await self._stream(request, docs, done)

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        checked = await self._prelude(request)
        if isinstance(checked, web.Response):
            return checked
        body, name, full, keep_alive_s = checked.fields()
        value = body.get("input")
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _error(400, "invalid input type")
        run = await self._begin(full, request.path, keep_alive_s)
        if isinstance(run, web.Response):
            return run
        self.memory.end(run, keep_alive_s)
        dim = body.get("dimensions") or self.behaviour.embedding_dim
        return web.json_response(
            {
                "model": name,
                "embeddings": [_vector(t, dim) for t in texts],
                "total_duration": 14143917,
                "load_duration": 1019500,
                "prompt_eval_count": sum(len(t.split()) for t in texts),
            }
        )

    def _words(self, body: dict[str, Any]) -> tuple[list[str], str]:
        """The reply in `chunks` pieces, cut at options.num_predict like a model."""
        words = _split(self.behaviour.reply, self.behaviour.chunks)
        options = body.get("options") or {}
        limit = options.get("num_predict") if isinstance(options, dict) else None
        if isinstance(limit, int) and 0 <= limit < len(words):
            return words[:limit], "length"
        return words, self.behaviour.done_reason

    def _line(self, name: str, extra: dict[str, Any]) -> dict[str, Any]:
        return {"model": name, "created_at": self._now(), **extra, "done": False}

    def _final(self, name: str, reason: str, prompt: int, generated: int) -> dict[str, Any]:
        return {
            "model": name,
            "created_at": self._now(),
            "done": True,
            "done_reason": reason,
            "total_duration": 4883583458,
            "load_duration": 1334875,
            "prompt_eval_count": prompt,
            "prompt_eval_duration": 342546000,
            "eval_count": generated,
            "eval_duration": 4535599000,
        }

    def _now(self) -> str:
        if self.behaviour.created_at is not None:
            return self.behaviour.created_at
        now = time.time_ns()
        stamp = datetime.fromtimestamp(now // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{stamp}.{now % 1_000_000_000:09d}Z"

    async def _stream(
        self, request: web.Request, docs: list[dict[str, Any]], done: Callable[[], None]
    ) -> web.StreamResponse:
        b = self.behaviour
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for i, doc in enumerate(docs):
            if b.break_stream_after is not None and i >= b.break_stream_after:
                assert request.transport is not None
                request.transport.close()
                return response
            if b.error_after is not None and i >= b.error_after:
                done()
                await response.write(orjson.dumps({"error": b.error_message}) + b"\n")
                break
            if i == len(docs) - 1:
                done()  # over for Ollama before the client can read the final line
            line = orjson.dumps(doc) + b"\n"
            if b.split_lines:
                cut = len(line) // 2
                await response.write(line[:cut])
                await asyncio.sleep(0.01)  # so the pieces arrive in separate reads
                line = line[cut:]
            await response.write(line)
            if b.chunk_delay_s:
                await asyncio.sleep(b.chunk_delay_s)
        # A client that stops reading at the final line may close first.
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response


def _split(text: str, parts: int) -> list[str]:
    words = text.split(" ")
    size = max(1, len(words) // max(1, parts))
    out = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [w if i == 0 else " " + w for i, w in enumerate(out)]


def _vector(text: str, dim: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % len(digest)] - 128) / 128 for i in range(dim)]


def _details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "1B",
        "quantization_level": "Q4_K_M",
    }


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
