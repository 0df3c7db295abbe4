"""HTTP calls for the engines' memory controls (load, unload, residency reads).

Unlike inference, a control call is small and has one deadline for the whole
exchange: the load timeout the scheduler gives it. `call()` enforces it and maps
transport failures to sparkplane's errors; what the answer means is the
adapter's business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from sparkplane.backends.base import DeviceUnreachable
from sparkplane.errors import UpstreamError, UpstreamTimeout

_JSON = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


@dataclass(frozen=True, slots=True)
class Answer:
    """An engine's answer to a control call: status, raw body, JSON when it was JSON."""

    status: int
    raw: bytes
    data: Any = None

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def error_text(self) -> str:
        """The engine's own error message: `{"error": "..."}` (Ollama),
        `{"error": {"message": ...}}` (OpenAI, llama.cpp), `{"detail": ...}`
        (FastAPI: vLLM, llama-cpp-python), else the body's start."""
        data = self.data
        if isinstance(data, dict):
            error = data.get("error", data.get("detail"))
            if isinstance(error, dict) and "message" in error:
                return str(error["message"])[:500]
            if error is not None:
                return str(error)[:500]
        text = self.raw.decode("utf-8", "replace").strip()
        return text[:500] or f"HTTP {self.status}"


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout: float,
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """Send one request and read its whole answer within `timeout` seconds.

    Raises `UpstreamTimeout` past the deadline and `DeviceUnreachable` when the
    connection fails; any HTTP status is returned, not raised.
    """
    body = orjson.dumps(json_body) if json_body is not None else None
    sent = {**_JSON, **(headers or {})} if body is not None else dict(headers or {})
    try:
        async with asyncio.timeout(timeout):
            async with session.request(
                method, url, data=body, params=params, headers=sent
            ) as response:
                raw = await response.read()
                status = response.status
    except TimeoutError as exc:
        raise UpstreamTimeout(f"{method} {url} took longer than {timeout:g}s") from exc
    except aiohttp.ClientError as exc:
        reason = (str(exc) or type(exc).__name__)[:200]
        raise DeviceUnreachable(f"{method} {url} failed: {reason}") from exc
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        data = None
    return Answer(status, raw, data)


def refused(what: str, answer: Answer) -> UpstreamError:
    """The error for an engine that answered a control call with an error status."""
    return UpstreamError(f"{what}: HTTP {answer.status}: {answer.error_text()}")
