"""HTTP plumbing shared by the adapters (aiohttp: measured several times faster
than httpx for a proxy's many short upstream calls; see docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from sparkplane.backends.base import DeviceUnreachable, Timeouts
from sparkplane.errors import UpstreamTimeout


def new_session(limit_per_host: int = 256) -> aiohttp.ClientSession:
    """The one client session an app shares across all devices."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=limit_per_host, ttl_dns_cache=300)
    # No session-wide timeout: each call sets its own from `Timeouts`.
    # No skip_auto_headers: aiohttp then builds a header dict per request (8 % of
    # the proxy's CPU in a profile); its User-Agent header is harmless.
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=False,
    )


class HttpUpstream:
    """An engine's aiohttp response whose body is forwarded as is."""

    __slots__ = ("_response", "content_type", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.content_type = response.headers.get("Content-Type", "application/json")

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except aiohttp.ClientError as exc:
            raise DeviceUnreachable(f"device dropped the connection: {_why(exc)}") from exc
        finally:
            self._response.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._response.content.iter_any():
                yield data
        except aiohttp.ClientError as exc:
            raise DeviceUnreachable(f"device dropped the stream: {_why(exc)}") from exc
        finally:
            self._response.release()

    def close(self) -> None:
        # close(), not release(): a half-read stream must not go back to the pool,
        # and closing the socket is what tells the engine to stop generating.
        self._response.close()


async def open_request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    body: bytes | None,
    headers: Mapping[str, str],
    timeouts: Timeouts,
) -> aiohttp.ClientResponse:
    """Send a request and return once the response head arrived.

    Connection failures become `DeviceUnreachable`; a connect timeout becomes
    `UpstreamTimeout`. Reading the body is the caller's business.
    """
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect)
    try:
        return await session.request(method, url, data=body, headers=headers, timeout=timeout)
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout(f"device did not accept the connection in time: {url}") from exc
    except aiohttp.ClientError as exc:
        raise DeviceUnreachable(f"device unreachable: {_why(exc)}") from exc


async def get_json(
    session: aiohttp.ClientSession,
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """GET a JSON document within `timeout` seconds (used by probes).

    Any failure (unreachable, timeout, non-2xx, not JSON) raises
    `DeviceUnreachable` or `UpstreamTimeout` with a short reason.
    """
    try:
        async with asyncio.timeout(timeout):
            async with session.get(url, headers=headers or {}) as response:
                data = await response.read()
                if response.status >= 400:
                    raise DeviceUnreachable(f"GET {url} answered HTTP {response.status}")
    except TimeoutError as exc:
        raise UpstreamTimeout(f"GET {url} took longer than {timeout:g}s") from exc
    except aiohttp.ClientError as exc:
        raise DeviceUnreachable(f"GET {url} failed: {_why(exc)}") from exc
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DeviceUnreachable(f"GET {url} did not return JSON") from exc


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
