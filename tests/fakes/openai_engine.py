"""A fake OpenAI-compatible engine (and cloud API) following OpenAI's documented
HTTP API: `/v1/models`, `/v1/chat/completions` (plain and SSE streaming),
`/v1/completions`, `/v1/embeddings`. Knobs let tests make it slow, fail, hang,
drop a stream halfway, or demand an API key like a cloud provider. `controls`
adds an engine's memory endpoints, shaped from its docs: "router" (llama.cpp
router mode: GET /models with status, POST /models/load and /models/unload,
loads taking `load_delay_s` in the background) or "vllm" (/metrics, and in dev
mode /sleep, /wake_up, /is_sleeping)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.loopback import LoopbackServer


@dataclass
class EngineBehaviour:
    """What the fake does; tests change these fields while it runs."""

    models: list[str] = field(default_factory=lambda: ["fake-model"])
    reply: str = "hello from the fake engine"
    delay_s: float = 0.0  # before the head of every answer
    chunk_delay_s: float = 0.0  # between stream chunks
    chunks: int = 4
    fail_status: int | None = None  # answer every inference with this status
    hang: bool = False  # accept, then never answer
    break_stream_after: int | None = None  # drop the connection after N chunks
    api_key: str | None = None  # require `Authorization: Bearer <key>`
    embedding_dim: int = 8
    controls: str | None = None  # None, "router" or "vllm"
    load_delay_s: float = 0.0  # router mode: time a load takes
    fail_load: set[str] = field(default_factory=set)  # router mode: these exit code 1
    kv_usage: float = 0.25  # vLLM's vllm:kv_cache_usage_perc


class FakeOpenAIEngine(LoopbackServer):
    """Run with `async with FakeOpenAIEngine() as engine:`; `engine.url` is its base URL."""

    def __init__(self, behaviour: EngineBehaviour | None = None, name: str = "fake") -> None:
        self.behaviour = behaviour or EngineBehaviour()
        self.name = name
        self.requests: list[dict[str, Any]] = []
        self.cancelled = 0
        self.status = {m: "unloaded" for m in self.behaviour.models}  # router mode
        self.failed: set[str] = set()
        self.sleeping = False  # vLLM
        self.controls_log: list[str] = []
        self._tasks: set[asyncio.Future[None]] = set()
        super().__init__()

    def routes(self, app: web.Application) -> None:
        """OpenAI's endpoints."""
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        if self.behaviour.controls == "router":
            app.router.add_get("/models", self._router_models)
            app.router.add_post("/models/load", self._router_load)
            app.router.add_post("/models/unload", self._router_unload)
        elif self.behaviour.controls == "vllm":
            app.router.add_get("/metrics", self._metrics)
            app.router.add_get("/is_sleeping", self._is_sleeping)
            app.router.add_post("/sleep", self._sleep)
            app.router.add_post("/wake_up", self._wake_up)

    async def _router_models(self, request: web.Request) -> web.Response:
        data = []
        for model, value in self.status.items():
            status: dict[str, Any] = {"value": value}
            if value != "unloaded" or model in self.failed:
                status["args"] = ["llama-server", "-ctx", "4096"]
            if model in self.failed:
                status.update(failed=True, exit_code=1)
            data.append({"id": model, "object": "model", "owned_by": "llamacpp", "status": status})
        return web.json_response({"data": data})

    async def _router_load(self, request: web.Request) -> web.Response:
        model = (await request.json()).get("model")
        if model not in self.status:
            return _error(400, "model not found", "invalid_request_error", None)
        self.controls_log.append(f"load {model}")
        self.status[model] = "loading"
        self.failed.discard(model)

        async def finish() -> None:
            await asyncio.sleep(self.behaviour.load_delay_s)
            if model in self.behaviour.fail_load:
                self.status[model] = "unloaded"
                self.failed.add(model)
            else:
                self.status[model] = "loaded"

        self._tasks.add(asyncio.ensure_future(finish()))
        return web.json_response({"success": True})

    async def _router_unload(self, request: web.Request) -> web.Response:
        model = (await request.json()).get("model")
        if model not in self.status:
            return _error(400, "model not found", "invalid_request_error", None)
        self.controls_log.append(f"unload {model}")
        self.status[model] = "unloaded"
        return web.json_response({"success": True})

    async def _metrics(self, request: web.Request) -> web.Response:
        usage = 0.0 if self.sleeping else self.behaviour.kv_usage
        text = (
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
            "# TYPE vllm:kv_cache_usage_perc gauge\n"
            f'vllm:kv_cache_usage_perc{{engine="0",model_name="{self.behaviour.models[0]}"}} '
            f"{usage}\n"
        )
        return web.Response(text=text, content_type="text/plain")

    async def _is_sleeping(self, request: web.Request) -> web.Response:
        return web.json_response({"is_sleeping": self.sleeping})

    async def _sleep(self, request: web.Request) -> web.Response:
        self.controls_log.append(f"sleep level={request.query.get('level', '1')}")
        self.sleeping = True
        return web.Response(status=200)

    async def _wake_up(self, request: web.Request) -> web.Response:
        self.controls_log.append("wake_up")
        self.sleeping = False
        return web.Response(status=200)

    def _authorized(self, request: web.Request) -> bool:
        key = self.behaviour.api_key
        return key is None or request.headers.get("Authorization") == f"Bearer {key}"

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(
                401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
            )
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": self.name}
            for m in self.behaviour.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _prelude(
        self, request: web.Request
    ) -> tuple[dict[str, Any] | None, web.Response | None]:
        if not self._authorized(request):
            return None, _error(
                401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
            )
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return None, _error(
                400, "We could not parse the JSON body", "invalid_request_error", None
            )
        self.requests.append(body)
        b = self.behaviour
        if b.hang:
            await asyncio.sleep(3600)
        if b.delay_s:
            await asyncio.sleep(b.delay_s)
        if b.fail_status is not None:
            return None, _error(b.fail_status, "The engine failed", "server_error", None)
        if body.get("model") not in b.models:
            return None, _error(
                404,
                f"The model `{body.get('model')}` does not exist",
                "invalid_request_error",
                "model_not_found",
            )
        return body, None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, error = await self._prelude(request)
        if error is not None or body is None:
            return error  # type: ignore[return-value]
        created = int(time.time())
        ident = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if body.get("stream"):
            words = _split(self.behaviour.reply, self.behaviour.chunks)
            chunks = [
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": w}
                            if i == 0
                            else {"content": w},
                            "finish_reason": None,
                        }
                    ],
                }
                for i, w in enumerate(words)
            ]
            chunks.append(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                }
            )
            return await self._stream(request, chunks)
        prompt_tokens = sum(
            len(str(m.get("content", "")).split()) for m in body.get("messages", [])
        )
        completion_tokens = len(self.behaviour.reply.split())
        return web.json_response(
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.behaviour.reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
            headers={"x-engine": self.name},
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body, error = await self._prelude(request)
        if error is not None or body is None:
            return error  # type: ignore[return-value]
        created = int(time.time())
        ident = f"cmpl-{uuid.uuid4().hex[:12]}"
        if body.get("stream"):
            chunks = [
                {
                    "id": ident,
                    "object": "text_completion",
                    "created": created,
                    "model": body["model"],
                    "choices": [{"index": 0, "text": w, "finish_reason": None, "logprobs": None}],
                }
                for w in _split(self.behaviour.reply, self.behaviour.chunks)
            ]
            return await self._stream(request, chunks)
        return web.json_response(
            {
                "id": ident,
                "object": "text_completion",
                "created": created,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "text": self.behaviour.reply,
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": 1,
                    "completion_tokens": len(self.behaviour.reply.split()),
                    "total_tokens": 1 + len(self.behaviour.reply.split()),
                },
            }
        )

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body, error = await self._prelude(request)
        if error is not None or body is None:
            return error  # type: ignore[return-value]
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        dim = self.behaviour.embedding_dim
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": [float((hash(str(x)) >> k) & 7) for k in range(dim)],
            }
            for i, x in enumerate(items)
        ]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": len(items), "total_tokens": len(items)},
            }
        )

    async def _stream(
        self, request: web.Request, chunks: list[dict[str, Any]]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "x-engine": self.name}
        )
        await response.prepare(request)
        try:
            for i, chunk in enumerate(chunks):
                if (
                    self.behaviour.break_stream_after is not None
                    and i >= self.behaviour.break_stream_after
                ):
                    assert request.transport is not None
                    request.transport.close()
                    return response
                await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                if self.behaviour.chunk_delay_s:
                    await asyncio.sleep(self.behaviour.chunk_delay_s)
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.cancelled += 1
            raise
        await response.write_eof()
        return response


def _split(text: str, parts: int) -> list[str]:
    words = text.split(" ")
    size = max(1, len(words) // max(1, parts))
    out = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [w if i == 0 else " " + w for i, w in enumerate(out)]


def _error(status: int, message: str, type_: str, code: str | None) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": type_, "param": None, "code": code}}, status=status
    )
