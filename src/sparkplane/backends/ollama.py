"""Ollama, spoken to in its native API (/api/chat, /api/generate, /api/embed)
and translated to and from OpenAI's shapes, streaming included."""

from __future__ import annotations

import time

import aiohttp

from sparkplane.backends.base import InferenceRequest, ProbeResult, Timeouts, Upstream
from sparkplane.backends.http import get_json
from sparkplane.backends.openai_compat import base_url
from sparkplane.errors import UpstreamError


class OllamaBackend:
    """An Ollama server."""

    kind = "ollama"

    def __init__(self, url: str, session: aiohttp.ClientSession, *, probe_timeout: float = 3.0):
        self.url = url
        self._root = base_url(url)
        self._session = session
        self._probe_timeout = probe_timeout

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
        """Translate and send (not written yet)."""
        raise UpstreamError("the Ollama adapter cannot send requests yet")
