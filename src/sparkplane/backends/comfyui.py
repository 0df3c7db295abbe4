"""ComfyUI devices: health and capabilities for the fleet, the calls the job
worker makes (submit, websocket events, uploads, outputs, interrupt, queue, free),
and its memory (`ResidencyControl`: read from /system_stats, freed with /free).

Probes read `/system_stats` every health round. `/object_info` (about 500 KB on
a real server) is read on the first probe, then again every
`refresh_s` seconds, when the device comes back after failing, and when its
`system_stats` identity (version, argv, devices) changes: a restart with new
custom nodes or models is noticed without re-reading half a megabyte every 5 s.

Requests carry none of the client's headers: ComfyUI answers 403 when `Origin`
names another host, so sparkplane sends no `Origin` at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from sparkplane.backends.base import (
    DeviceUnreachable,
    InferenceRequest,
    ProbeResult,
    Timeouts,
    Upstream,
)
from sparkplane.backends.comfyui_residency import FREE_BODY, parse_system_stats, queue_busy
from sparkplane.backends.comfyui_ws import DeviceSocket
from sparkplane.backends.control import call, refused
from sparkplane.backends.http import get_json
from sparkplane.backends.openai_compat import base_url
from sparkplane.backends.residency import Residency, UnsupportedControl
from sparkplane.backends.workflow import Capabilities, EventStream
from sparkplane.errors import BadRequest, UpstreamError, UpstreamTimeout

OBJECT_INFO_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0
_CHUNK = 256 * 1024
# How often unload() looks at /queue until ComfyUI's worker is idle (it acts on /free then).
_FREE_POLL_S = 0.05


class ComfyUIBackend:
    """A ComfyUI server. It serves no LLM models, so the gateway never picks it."""

    kind = "comfyui"

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        probe_timeout: float = 3.0,
        refresh_s: float = 300.0,
    ) -> None:
        self.url = url
        self._root = base_url(url)
        self._session = session
        self._probe_timeout = probe_timeout
        self.refresh_s = refresh_s
        self.capabilities: Capabilities | None = None
        self.system_stats: dict[str, Any] | None = None
        self._identity: Any = None
        self._failed = False

    async def probe(self) -> ProbeResult:
        """Read `/system_stats`, and `/object_info` when due (see module docstring)."""
        started = time.perf_counter()
        try:
            stats = await get_json(
                self._session, f"{self._root}/system_stats", timeout=self._probe_timeout
            )
        except UpstreamError:
            self._failed = True
            raise
        latency = time.perf_counter() - started
        if not (isinstance(stats, dict) and isinstance(stats.get("system"), dict)):
            raise UpstreamError("not a ComfyUI server: /system_stats has no 'system'")
        system = stats["system"]
        identity = (
            system.get("comfyui_version"),
            system.get("argv"),
            [(d.get("name"), d.get("vram_total")) for d in stats.get("devices") or []],
        )
        due = (
            self.capabilities is None
            or self._failed
            or identity != self._identity
            or time.monotonic() - self.capabilities.fetched_at > self.refresh_s
        )
        self.system_stats = stats
        if due:
            try:
                await self.refresh_capabilities()
            except UpstreamError:
                if self.capabilities is None:
                    raise
        self._identity, self._failed = identity, False
        return ProbeResult(
            kind=self.kind,
            models=[],
            latency_s=latency,
            version=str(system.get("comfyui_version")) if system.get("comfyui_version") else None,
            extra={"devices": stats.get("devices", [])},
        )

    async def refresh_capabilities(self) -> Capabilities:
        """Read `/object_info` now."""
        info = await get_json(
            self._session,
            f"{self._root}/object_info",
            timeout=max(OBJECT_INFO_TIMEOUT, self._probe_timeout),
        )
        if not isinstance(info, dict):
            raise UpstreamError("ComfyUI /object_info is not a JSON object")
        self.capabilities = Capabilities.from_object_info(info)
        return self.capabilities

    async def send(self, request: InferenceRequest, model: str, timeouts: Timeouts) -> Upstream:
        """ComfyUI does not take OpenAI requests."""
        raise BadRequest("ComfyUI devices run workflows, not OpenAI requests")

    # -- the job worker's calls ------------------------------------------------

    async def _call(
        self, method: str, path: str, *, json_body: Any = None, data: Any = None, params: Any = None
    ) -> tuple[int, bytes]:
        body = orjson.dumps(json_body) if json_body is not None else data
        headers = {"Content-Type": "application/json"} if json_body is not None else {}
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                async with self._session.request(
                    method, self._root + path, data=body, headers=headers, params=params
                ) as response:
                    return response.status, await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{method} {path} on {self.url} took too long") from exc
        except aiohttp.ClientError as exc:
            raise DeviceUnreachable(f"{method} {path} on {self.url} failed: {exc}"[:300]) from exc

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        status, raw = await self._call(method, path, **kwargs)
        if status >= 400:
            raise DeviceUnreachable(f"{method} {path} on {self.url} answered HTTP {status}")
        try:
            return orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            raise DeviceUnreachable(f"{method} {path} on {self.url} did not answer JSON") from exc

    async def submit(
        self, prompt: dict[str, Any], prompt_id: str, client_id: str, extra_data: dict[str, Any]
    ) -> tuple[int, Any]:
        """POST /prompt under our ids."""
        body = {
            "prompt": prompt,
            "prompt_id": prompt_id,
            "client_id": client_id,
            "extra_data": extra_data,
        }
        status, raw = await self._call("POST", "/prompt", json_body=body)
        try:
            return status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return status, {"error": raw.decode("utf-8", "replace")[:500]}

    async def events(self, client_id: str, preview_metadata: bool) -> EventStream:
        """Open /ws?clientId=... (before submitting, so no frame is missed)."""
        ws_url = self._root.replace("http", "ws", 1) + "/ws"
        return await DeviceSocket.open(
            self._session, ws_url, client_id, preview_metadata, CALL_TIMEOUT
        )

    async def upload(self, name: str, path: Path, subfolder: str, type_: str) -> dict[str, Any]:
        """POST /upload/image with overwrite (names are content hashes: same bytes)."""
        form = aiohttp.FormData()
        form.add_field("overwrite", "true")
        form.add_field("subfolder", subfolder)
        form.add_field("type", type_)
        with path.open("rb") as f:
            form.add_field("image", f, filename=name, content_type="application/octet-stream")
            answer = await self._json("POST", "/upload/image", data=form)
        if not isinstance(answer, dict):
            raise DeviceUnreachable(f"upload to {self.url} gave no answer")
        return answer

    async def download(self, filename: str, subfolder: str, type_: str) -> AsyncIterator[bytes]:
        """GET /view for one output file, streamed."""
        params = {"filename": filename, "subfolder": subfolder, "type": type_}
        try:
            async with self._session.get(
                self._root + "/view",
                params=params,
                timeout=aiohttp.ClientTimeout(sock_connect=CALL_TIMEOUT, sock_read=CALL_TIMEOUT),
            ) as response:
                if response.status != 200:
                    raise DeviceUnreachable(
                        f"/view of an output on {self.url} answered HTTP {response.status}"
                    )
                async for chunk in response.content.iter_chunked(_CHUNK):
                    yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeviceUnreachable(f"/view on {self.url} failed: {exc}"[:300]) from exc

    async def history(self, prompt_id: str) -> dict[str, Any]:
        """GET /history/{prompt_id}."""
        answer = await self._json("GET", f"/history/{prompt_id}")
        return answer if isinstance(answer, dict) else {}

    async def queue(self) -> dict[str, Any]:
        """GET /queue."""
        answer = await self._json("GET", "/queue")
        return answer if isinstance(answer, dict) else {}

    async def interrupt(self, prompt_id: str | None) -> None:
        """POST /interrupt (targeted when `prompt_id` is given)."""
        await self._json(
            "POST", "/interrupt", json_body={"prompt_id": prompt_id} if prompt_id else {}
        )

    async def delete(self, prompt_ids: list[str]) -> None:
        """POST /queue {"delete": [...]}."""
        await self._json("POST", "/queue", json_body={"delete": prompt_ids})

    async def free(self, body: dict[str, Any]) -> None:
        """POST /free."""
        await self._json("POST", "/free", json_body=body)

    # -- ResidencyControl ------------------------------------------------------

    async def residency(self) -> Residency:
        """Device and host memory from `/system_stats`, queue counts from `/queue`.

        ComfyUI does not list the models it holds: `loaded` is empty and the
        figures it gives are in `detail` (see `comfyui_residency`).
        """
        stats = await get_json(
            self._session, f"{self._root}/system_stats", timeout=self._probe_timeout
        )
        queue = await get_json(self._session, f"{self._root}/queue", timeout=self._probe_timeout)
        self.system_stats = stats if isinstance(stats, dict) else self.system_stats
        try:
            return parse_system_stats(stats, queue)
        except ValueError as exc:
            raise UpstreamError(f"{self.url}: {exc}") from exc

    async def load(self, model: str, timeout: float) -> None:
        """ComfyUI has no load call: it loads a checkpoint on the first job that uses it."""
        raise UnsupportedControl(f"ComfyUI at {self.url} loads models on first use only")

    async def unload(self, model: str, timeout: float) -> None:
        """`POST /free` with unload_models and free_memory: ComfyUI drops every model.

        ComfyUI cannot unload one model, so unloading any frees them all (and its
        node cache). Its worker acts on the request when no prompt is running:
        this returns once `/queue` shows none, or raises UpstreamTimeout.
        """
        deadline = time.monotonic() + timeout
        answer = await call(
            self._session, "POST", f"{self._root}/free", json_body=FREE_BODY, timeout=timeout
        )
        if not answer.ok:
            raise refused(f"ComfyUI at {self.url} did not free its memory", answer)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise UpstreamTimeout(f"ComfyUI at {self.url} was still busy after {timeout:g}s")
            queue = await call(self._session, "GET", f"{self._root}/queue", timeout=left)
            if queue.ok and not queue_busy(queue.data):
                return
            await asyncio.sleep(min(_FREE_POLL_S, left))
