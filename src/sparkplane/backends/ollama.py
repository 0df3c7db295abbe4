"""Ollama, spoken to in its native API (/api/chat, /api/generate, /api/embed)
and translated to and from OpenAI's shapes, streaming included; its memory read
from /api/ps and steered with keep_alive (`ResidencyControl`).

The mapping itself is pure and lives in `ollama_translate` (requests),
`ollama_reply` (answers), `ollama_stream` (NDJSON to SSE) and
`ollama_residency` (memory); this module only does the I/O.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import orjson

from sparkplane.backends.base import (
    DeviceUnreachable,
    InferenceRequest,
    ProbeResult,
    Timeouts,
    Upstream,
)
from sparkplane.backends.control import call, refused
from sparkplane.backends.http import get_json, open_request
from sparkplane.backends.ollama_reply import answer, exception_body, reply_for
from sparkplane.backends.ollama_residency import (
    FOREVER,
    KeepAlive,
    check_done,
    control_body,
    full_name,
    keep_alive_value,
    kept_for_years,
    parse_ps,
)
from sparkplane.backends.ollama_stream import StreamTranslator
from sparkplane.backends.ollama_translate import Unsupported, to_ollama
from sparkplane.backends.openai_compat import base_url
from sparkplane.backends.residency import Residency
from sparkplane.errors import UpstreamError, UpstreamTimeout

_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
# How often unload() looks at /api/ps until the model is gone.
_UNLOAD_POLL_S = 0.05


class OllamaBackend:
    """An Ollama server.

    `keep_alive` is what `load()` asks for: by default -1, kept until sparkplane
    unloads it, because sparkplane decides evictions (see `ollama_residency`).
    Ollama resets a model's expiry on every request, so requests for a model
    sparkplane pinned (loaded here, or listed by /api/ps as kept for years) carry
    the same keep_alive, overriding the client's; other models keep the
    client's keep_alive and Ollama's own default (5 minutes).
    """

    kind = "ollama"

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        probe_timeout: float = 3.0,
        keep_alive: KeepAlive = FOREVER,
    ):
        self.url = url
        self._root = base_url(url)
        self._session = session
        self._probe_timeout = probe_timeout
        self._keep_alive = keep_alive_value(keep_alive)
        self._pinned: set[str] = set()  # full names of the models sparkplane keeps loaded

    async def probe(self) -> ProbeResult:
        """`/api/version` proves it is Ollama; `/api/tags` lists its models."""
        started = time.perf_counter()
        version = await get_json(
            self._session, f"{self._root}/api/version", timeout=self._probe_timeout
        )
        tags = await get_json(self._session, f"{self._root}/api/tags", timeout=self._probe_timeout)
        latency = time.perf_counter() - started
        if not isinstance(version, dict) or "version" not in version or not isinstance(tags, dict):
            raise UpstreamError("not an Ollama server")
        models = [
            str(m.get("name") or m.get("model"))
            for m in tags.get("models", [])
            if isinstance(m, dict)
        ]
        return ProbeResult(
            kind=self.kind, models=models, latency_s=latency, version=str(version["version"])
        )

    async def send(self, request: InferenceRequest, model: str, timeouts: Timeouts) -> Upstream:
        """Translate `request` to Ollama's API, send it for `model`, answer in OpenAI's.

        A 200 stream returns once its head arrived and is translated chunk by
        chunk. Any other answer is read whole here, so that its status can be
        the translated one (a malformed 200 becomes a 502). A request Ollama
        cannot serve (token-id prompts, image URLs, n > 1) is answered 400
        without reaching the device.
        """
        reply = reply_for(request.op, request.payload, token=uuid.uuid4().hex, now=time.time())
        try:
            ollama_call = to_ollama(request.op, request.payload, model, stream=request.stream)
        except Unsupported as exc:
            return BufferedUpstream(exc.status, exception_body(exc))
        if full_name(model) in self._pinned:
            ollama_call.body["keep_alive"] = self._keep_alive
        response = await open_request(
            self._session,
            "POST",
            self._root + ollama_call.path,
            body=orjson.dumps(ollama_call.body),
            headers=_HEADERS,
            timeouts=timeouts,
        )
        if request.stream and response.status == 200:
            return OllamaStream(response, StreamTranslator(reply))
        read = False
        try:
            body = await response.read()
            read = True
        except aiohttp.ClientError as exc:
            raise DeviceUnreachable(f"device dropped the connection: {_why(exc)}") from exc
        finally:
            # Only a fully read connection may go back to the pool.
            if read:
                response.release()
            else:
                response.close()
        status, data = answer(reply, response.status, body)
        return BufferedUpstream(status, data)

    # -- ResidencyControl ------------------------------------------------------

    async def residency(self) -> Residency:
        """The models Ollama holds (`GET /api/ps`); it reports no device totals."""
        data = await get_json(self._session, f"{self._root}/api/ps", timeout=self._probe_timeout)
        try:
            held = parse_ps(data)
        except ValueError as exc:
            raise UpstreamError(f"{self.url}: {exc}") from exc
        # Loaded with keep_alive forever, by this process before a restart or by another.
        self._pinned.update(full_name(m.name) for m in held.loaded if kept_for_years(m))
        return held

    async def load(self, model: str, timeout: float) -> None:
        """Load `model` with the adapter's keep_alive; Ollama answers once it is in memory."""
        await self._generate_control(model, control_body(model, self._keep_alive), "load", timeout)
        self._pinned.add(full_name(model))

    async def unload(self, model: str, timeout: float) -> None:
        """Unload `model` (keep_alive 0), then wait until /api/ps no longer lists it.

        Ollama acknowledges at once and lets the model go when its requests in
        flight are done, so the wait can last as long as they do.
        """
        deadline = time.monotonic() + timeout
        self._pinned.discard(full_name(model))
        await self._generate_control(model, control_body(model, 0), "unload", timeout)
        wanted = full_name(model)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise UpstreamTimeout(f"{self.url} still holds {model} after {timeout:g}s")
            held = await self.residency()
            if wanted not in {full_name(name) for name in held.names()}:
                return
            await asyncio.sleep(min(_UNLOAD_POLL_S, left))

    async def _generate_control(
        self, model: str, body: dict[str, object], expected: str, timeout: float
    ) -> None:
        reply = await call(
            self._session,
            "POST",
            f"{self._root}/api/generate",
            json_body=body,
            timeout=timeout,
        )
        what = f"Ollama at {self.url} did not {expected} {model}"
        if not reply.ok:
            raise refused(what, reply)
        try:
            check_done(reply.data, expected)
        except ValueError as exc:
            raise UpstreamError(f"{what}: {exc}") from exc


class BufferedUpstream:
    """An answer already read and translated (or made here, for a refused request)."""

    __slots__ = ("_body", "content_type", "status")

    def __init__(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.status = status
        self.content_type = content_type
        self._body = body

    async def read(self) -> bytes:
        return self._body

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._body

    def close(self) -> None:
        return None


class OllamaStream:
    """A 200 NDJSON stream from Ollama, relayed as OpenAI SSE chunks."""

    __slots__ = ("_response", "_translator", "content_type", "status")

    def __init__(self, response: aiohttp.ClientResponse, translator: StreamTranslator) -> None:
        self._response = response
        self._translator = translator
        self.status = 200
        self.content_type = "text/event-stream"

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        translator = self._translator
        try:
            async for data in self._response.content.iter_any():
                out = translator.feed(data)
                if out:
                    yield out
                if translator.finished:
                    break
            else:
                out = translator.end()
                if out:
                    yield out
        except aiohttp.ClientError as exc:
            raise DeviceUnreachable(f"device dropped the stream: {_why(exc)}") from exc
        finally:
            self.close()
        if not translator.finished:
            raise DeviceUnreachable("Ollama ended the stream before it said done")

    def close(self) -> None:
        # A stream read to its end may be reused; one cut short must be closed,
        # which is also what tells Ollama to stop generating.
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


def _why(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:200]
