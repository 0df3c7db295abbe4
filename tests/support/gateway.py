"""Running sparkplane inside the test's event loop on a real loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI

from sparkplane.app import create_app
from sparkplane.config import Settings
from sparkplane.lifecycle import Lifecycle
from sparkplane.runtime import Runtime
from tests.support.net import free_port


@dataclass
class Gateway:
    """A sparkplane app served by uvicorn on 127.0.0.1."""

    app: FastAPI
    server: uvicorn.Server
    lifecycle: Lifecycle
    url: str
    client: httpx.AsyncClient

    @property
    def runtime(self) -> Runtime:
        """The running app's parts (fleet, dispatcher, store...)."""
        rt: Runtime = self.server.lifespan.state["runtime"]  # type: ignore[attr-defined]
        return rt


@asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """Serve `settings` until the block ends."""
    lifecycle = Lifecycle()
    app = create_app(settings, lifecycle=lifecycle, discover=False)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        loop="none",
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("sparkplane did not start")
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        try:
            yield Gateway(app, server, lifecycle, url, client)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 15)
