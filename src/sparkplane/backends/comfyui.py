"""ComfyUI devices: probed for health and capabilities here; workflows run
through the ComfyUI API (see api/comfy.py when it lands), not the LLM gateway."""

from __future__ import annotations

import time

import aiohttp

from sparkplane.backends.base import InferenceRequest, ProbeResult, Timeouts, Upstream
from sparkplane.backends.http import get_json
from sparkplane.backends.openai_compat import base_url
from sparkplane.errors import BadRequest, UpstreamError


class ComfyUIBackend:
    """A ComfyUI server. It serves no LLM models, so the gateway never picks it."""

    kind = "comfyui"

    def __init__(self, url: str, session: aiohttp.ClientSession, *, probe_timeout: float = 3.0):
        self.url = url
        self._root = base_url(url)
        self._session = session
        self._probe_timeout = probe_timeout

    async def probe(self) -> ProbeResult:
        """Read `/system_stats` (version, devices, memory)."""
        started = time.perf_counter()
        stats = await get_json(
            self._session, f"{self._root}/system_stats", timeout=self._probe_timeout
        )
        latency = time.perf_counter() - started
        if not (isinstance(stats, dict) and isinstance(stats.get("system"), dict)):
            raise UpstreamError("not a ComfyUI server: /system_stats has no 'system'")
        system = stats["system"]
        devices = stats.get("devices", [])
        return ProbeResult(
            kind=self.kind,
            models=[],
            latency_s=latency,
            version=str(system.get("comfyui_version")) if system.get("comfyui_version") else None,
            extra={"devices": devices},
        )

    async def send(self, request: InferenceRequest, model: str, timeouts: Timeouts) -> Upstream:
        """ComfyUI does not take OpenAI requests."""
        raise BadRequest("ComfyUI devices run workflows, not OpenAI requests")
