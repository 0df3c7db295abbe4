"""Engines that speak OpenAI's HTTP API: llama.cpp's server, vLLM, SGLang, TGI,
LM Studio, Triton's OpenAI front-end, and cloud providers (with an API key).

Their memory controls differ by engine (see `openai_residency`); the adapter finds
out which one it talks to on first use by trying the endpoints, and keeps the answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from sparkplane.backends import openai_residency as oar
from sparkplane.backends.base import InferenceRequest, Operation, ProbeResult, Timeouts, Upstream
from sparkplane.backends.control import Answer, call, refused
from sparkplane.backends.http import HttpUpstream, get_json, open_request
from sparkplane.backends.residency import Residency, UnsupportedControl
from sparkplane.errors import UpstreamError, UpstreamTimeout

# How often a router-mode load or unload is checked on until it is done.
_POLL_S = 0.1

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
        self._controls: oar.Controls | None = None
        self._current: str | None = None  # llama-cpp-python: the model it holds

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
        if self._controls is oar.Controls.LLAMA_CPP_PYTHON and response.status < 400:
            self._current = model  # it switched to `model` to answer
        return HttpUpstream(response)

    # -- ResidencyControl ------------------------------------------------------

    async def residency(self) -> Residency:
        """What the engine holds, in the way this engine says it (module docstring)."""
        controls = await self.controls()
        if controls is oar.Controls.ROUTER:
            return oar.parse_router(await self._get("/models"))
        models = await self._get("/v1/models")
        if controls is oar.Controls.LLAMA_CPP:
            props = await self._get("/props")
            slots = await self._answer("GET", "/slots")
            return oar.parse_llama(props, slots.data if slots.ok else None, models)
        if controls is oar.Controls.LLAMA_CPP_PYTHON:
            names = [str(e["id"]) for e in oar.model_entries(models)]
            if self._current not in names:
                self._current = names[0] if names else None  # it loads the first at start
            held = oar.listed({"data": [{"id": self._current}]} if self._current else {}, controls)
            return Residency(loaded=held.loaded, detail={**held.detail, "models": names})
        detail: dict[str, object] = {}
        if controls in (oar.Controls.VLLM, oar.Controls.VLLM_SLEEP):
            metrics = await self._answer("GET", "/metrics")
            detail["kv_cache_usage"] = oar.vllm_kv_usage(metrics.raw.decode("utf-8", "replace"))
        if controls is oar.Controls.VLLM_SLEEP:
            sleeping = await self._get("/is_sleeping")
            detail["is_sleeping"] = bool(isinstance(sleeping, dict) and sleeping.get("is_sleeping"))
            if detail["is_sleeping"]:
                return Residency(detail={"source": str(controls), **detail})
        return oar.listed(models, str(controls), **detail)

    async def load(self, model: str, timeout: float) -> None:
        """Load `model`: router `/models/load`, vLLM `/wake_up`, llama-cpp-python's switch."""
        controls = await self.controls()
        if controls is oar.Controls.ROUTER:
            await self._post_ok("/models/load", {"model": model}, f"load {model}", timeout)
            await self._wait_router(model, "loaded", timeout)
        elif controls is oar.Controls.VLLM_SLEEP:
            await self._post_ok("/wake_up", None, "wake up", timeout)
        elif controls is oar.Controls.LLAMA_CPP_PYTHON:
            names = {str(e["id"]) for e in oar.model_entries(await self._get("/v1/models"))}
            if model not in names:  # it would silently load its first model instead
                raise UpstreamError(f"{self.url} does not serve {model}")
            body = {"model": model, "input": ""}
            await self._post_ok("/extras/tokenize", body, f"switch to {model}", timeout)
            self._current = model
        else:
            raise UnsupportedControl(f"{self.url} ({controls}) offers no way to load a model")

    async def unload(self, model: str, timeout: float) -> None:
        """Unload `model`: router `/models/unload`, vLLM `/sleep?level=1` (weights to host)."""
        controls = await self.controls()
        if controls is oar.Controls.ROUTER:
            await self._post_ok("/models/unload", {"model": model}, f"unload {model}", timeout)
            await self._wait_router(model, "unloaded", timeout)
        elif controls is oar.Controls.VLLM_SLEEP:
            await self._post_ok("/sleep?level=1", None, "sleep", timeout)
        else:
            raise UnsupportedControl(f"{self.url} ({controls}) offers no way to unload a model")

    async def controls(self) -> oar.Controls:
        """Which memory controls the engine offers, found once by trying its endpoints."""
        if self._controls is None:
            self._controls = await self._detect()
        return self._controls

    async def _detect(self) -> oar.Controls:
        models = await self._answer("GET", "/models")
        if models.ok and oar.is_router_models(models.data):
            return oar.Controls.ROUTER
        props = await self._answer("GET", "/props")
        if props.ok and oar.is_llama_props(props.data):
            return oar.Controls.LLAMA_CPP
        if (await self._answer("GET", "/is_sleeping")).ok:
            return oar.Controls.VLLM_SLEEP
        metrics = await self._answer("GET", "/metrics")
        if metrics.ok and b"vllm:" in metrics.raw:
            return oar.Controls.VLLM
        openapi = await self._answer("GET", "/openapi.json")
        if openapi.ok and oar.is_llama_cpp_python(openapi.data):
            return oar.Controls.LLAMA_CPP_PYTHON
        return oar.Controls.NONE

    async def _answer(self, method: str, path: str, timeout: float | None = None) -> Answer:
        return await call(
            self._session,
            method,
            self._root + path,
            timeout=timeout or self._probe_timeout,
            headers=self._auth,
        )

    async def _get(self, path: str) -> Any:
        answer = await self._answer("GET", path)
        if not answer.ok:
            raise refused(f"{self.url} GET {path}", answer)
        return answer.data

    async def _post_ok(self, path: str, body: object, what: str, timeout: float) -> None:
        answer = await call(
            self._session,
            "POST",
            self._root + path,
            json_body=body,
            timeout=timeout,
            headers=self._auth,
        )
        if not answer.ok:
            raise refused(f"{self.url} did not {what}", answer)
        if isinstance(answer.data, dict) and answer.data.get("success") is False:
            raise UpstreamError(f"{self.url} did not {what}: {answer.error_text()}")

    async def _wait_router(self, model: str, wanted: str, timeout: float) -> None:
        """Router loads and unloads run in the background: wait for the status."""
        deadline = time.monotonic() + timeout
        while True:
            status = oar.router_status(await self._get("/models")).get(model)
            if status is None:
                raise UpstreamError(f"{self.url} does not list {model}")
            if status.get("value") == wanted:
                return
            if status.get("failed"):
                code = status.get("exit_code")
                raise UpstreamError(f"{self.url} failed to load {model} (exit code {code})")
            left = deadline - time.monotonic()
            if left <= 0:
                raise UpstreamTimeout(f"{model} on {self.url} not {wanted} after {timeout:g}s")
            await asyncio.sleep(min(_POLL_S, left))


def _model_entries(data: object) -> list[dict[str, object]]:
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return [m for m in data["data"] if isinstance(m, dict) and "id" in m]
    return []
