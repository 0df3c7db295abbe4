"""sparkplane in front of fake ComfyUI devices, and the client flow a ComfyUI app uses."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from sparkplane.backends.workflow import WorkflowBackend
from sparkplane.config import Settings
from tests.fakes.comfyui import FakeComfyConfig, FakeComfyUI
from tests.fakes.comfyui_conformance.support import WsRecorder, done, text
from tests.support.gateway import Gateway, running_gateway


@asynccontextmanager
async def fleet(configs: Sequence[FakeComfyConfig]) -> AsyncIterator[list[FakeComfyUI]]:
    """Fake ComfyUI servers, started together and closed after the block."""
    fakes = [FakeComfyUI(c) for c in configs]
    for fake in fakes:
        await fake.start()
    try:
        yield fakes
    finally:
        for fake in fakes:
            await fake.close()


async def register(gw: Gateway, fakes: Sequence[FakeComfyUI], names: Sequence[str] = ()) -> None:
    """Register the fakes as ComfyUI devices and wait until their capabilities are known."""
    rt = gw.runtime
    for i, fake in enumerate(fakes):
        name = names[i] if i < len(names) else f"comfy{i}"
        await rt.store.add(name=name, url=fake.url, kind="comfyui")
    rt.fleet.sync(await rt.store.list_devices())
    await wait_capable(gw, len(fakes))


async def wait_capable(gw: Gateway, count: int, within_s: float = 10.0) -> None:
    """Until `count` devices are healthy with their /object_info read."""
    async with asyncio.timeout(within_s):
        while True:
            ready = [
                d
                for d in gw.runtime.fleet.devices()
                if isinstance(d.backend, WorkflowBackend)
                and d.backend.capabilities is not None
                and d.available
                and d.probed
            ]
            if len(ready) >= count:
                return
            await asyncio.sleep(0.05)


@asynccontextmanager
async def comfy_gateway(
    settings: Settings, fakes: Sequence[FakeComfyUI], names: Sequence[str] = ()
) -> AsyncIterator[Gateway]:
    """sparkplane serving `settings` with `fakes` registered."""
    async with running_gateway(settings) as gw:
        await register(gw, fakes, names)
        yield gw


class ComfyClient:
    """What a ComfyUI app does against one base URL (sparkplane or ComfyUI)."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
    ):
        self.session = session
        self.url = url
        self.headers = headers or {}
        self.client_id = str(uuid.uuid4())

    async def connect(self, client_id: str | None = None) -> WsRecorder:
        """Open /ws?clientId= and wait for the greeting."""
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={client_id or self.client_id}"
        ws = await WsRecorder.connect(self.session, ws_url, headers=self.headers)
        await ws.wait_for(text("status"))
        return ws

    async def post(self, body: dict[str, Any], **headers: str) -> tuple[int, Any]:
        """POST /prompt."""
        async with self.session.post(
            self.url + "/prompt", json=body, headers={**self.headers, **headers}
        ) as r:
            return r.status, await r.json(content_type=None)

    async def queue(self, prompt: dict[str, Any], **extra: Any) -> str:
        """POST /prompt for this client, expecting 200; the prompt_id."""
        status, answer = await self.post({"prompt": prompt, "client_id": self.client_id, **extra})
        assert status == 200, answer
        return str(answer["prompt_id"])

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        """GET a JSON route."""
        async with self.session.get(self.url + path, params=params, headers=self.headers) as r:
            return r.status, await r.json(content_type=None)

    async def history(self, prompt_id: str) -> dict[str, Any]:
        """GET /history/{id}."""
        status, body = await self.get(f"/history/{prompt_id}")
        assert status == 200
        return dict(body)

    async def view(self, image: dict[str, Any]) -> tuple[int, bytes]:
        """GET /view for one output entry."""
        params = {k: image[k] for k in ("filename", "subfolder", "type")}
        async with self.session.get(self.url + "/view", params=params, headers=self.headers) as r:
            return r.status, await r.read()

    async def run(self, ws: WsRecorder, prompt: dict[str, Any], within_s: float = 20.0) -> str:
        """Queue and wait for `executing` with node null (ComfyUI's websocket example)."""
        start = len(ws.frames)
        prompt_id = await self.queue(prompt)
        await ws.wait_for(done(prompt_id), start=start, within_s=within_s)
        return prompt_id

    async def images(self, prompt_id: str) -> list[bytes]:
        """Every output image of a finished prompt, fetched through /view."""
        entry = (await self.history(prompt_id))[prompt_id]
        found = []
        for output in entry["outputs"].values():
            for image in output.get("images", []):
                status, data = await self.view(image)
                assert status == 200, image
                found.append(data)
        return found
