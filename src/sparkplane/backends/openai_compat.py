"""Engines that speak OpenAI's HTTP API: llama.cpp's server, vLLM, SGLang, TGI,
LM Studio, Triton's OpenAI front-end, and cloud providers (with an API key)."""

from __future__ import annotations

import time

import aiohttp

from sparkplane.backends.base import InferenceRequest, Operation, ProbeResult, Timeouts, Upstream
from sparkplane.backends.http import HttpUpstream, get_json, open_request

PATHS = {
    Operation.CHAT: "/v1/chat/completions",
    Operation.COMPLETION: "/v1/completions",
    Operation.EMBEDDING: "/v1/embeddings",
}


def base_url(url: str) -> str:
    """The server root: users paste both `http://h:8000` and `http://h:8000/v1`."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class OpenAICompatBackend:
    """A device reached through the OpenAI-compatible HTTP API."""

    kind = "openai"

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        api_key: str | None = None,
        probe_timeout: float = 3.0,
    ) -> None:
        self.url = url
        self._root = base_url(url)
        self._session = session
        self._probe_timeout = probe_timeout
        self._headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        self._auth: dict[str, str] = {}
        if api_key:
            self._auth = {"Authorization": f"Bearer {api_key}"}
            self._headers.update(self._auth)

    async def probe(self) -> ProbeResult:
        """List models through `GET /v1/models`."""
        started = time.perf_counter()
        data = await get_json(
            self._session,
            f"{self._root}/v1/models",
            timeout=self._probe_timeout,
            headers=self._auth,
        )
        latency = time.perf_counter() - started
        models = [str(m["id"]) for m in _model_entries(data)]
        return ProbeResult(kind=self.kind, models=models, latency_s=latency)

    async def send(self, request: InferenceRequest, model: str, timeouts: Timeouts) -> Upstream:
        """POST the request to the engine's matching /v1 endpoint."""
        response = await open_request(
            self._session,
            "POST",
            self._root + PATHS[request.op],
            body=request.body_for(model),
            headers=self._headers,
            timeouts=timeouts,
        )
        return HttpUpstream(response)


def _model_entries(data: object) -> list[dict[str, object]]:
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return [m for m in data["data"] if isinstance(m, dict) and "id" in m]
    return []
