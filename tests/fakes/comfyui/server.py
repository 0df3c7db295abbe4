"""FakeComfyUI: start, stop, kill, freeze, fail and restart one fake server."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import tempfile
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.comfyui.catalog import Catalog
from tests.fakes.comfyui.config import FakeComfyConfig, Fault
from tests.fakes.comfyui.files import Folders
from tests.fakes.comfyui.hub import Hub
from tests.fakes.comfyui.images import Frame
from tests.fakes.comfyui.nodes import RUNNERS
from tests.fakes.comfyui.queue import PromptQueue
from tests.fakes.comfyui.routes import route_table, server_features
from tests.fakes.comfyui.state import Controls, FakeStats, FaultBook, State
from tests.fakes.comfyui.worker import Worker

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str | None) -> bool:
    """ComfyUI's check, without DNS: a loopback IP literal or a localhost name."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")


def origin_forbidden(headers: Any) -> bool:
    """True when Host is loopback and Origin names another host (ComfyUI answers 403)."""
    if "Host" not in headers or "Origin" not in headers:
        return False
    host_domain: str | None = headers["Host"].lower()
    parsed = urllib.parse.urlparse(headers["Origin"])
    origin_domain: str | None = parsed.netloc.lower()
    host_parsed = urllib.parse.urlsplit("//" + (host_domain or ""))
    loopback = is_loopback(host_parsed.hostname)
    if parsed.port is None:
        host_domain = host_parsed.hostname
    if host_parsed.port is None:
        origin_domain = parsed.hostname
    return bool(loopback and host_domain and origin_domain and host_domain != origin_domain)


class FakeComfyUI:
    """A ComfyUI 0.3.64 look-alike on a loopback port.

    `async with FakeComfyUI(config) as fake:` starts it (fake.url, fake.port); `stats`
    counts what it received and ran. Failure controls: `kill()` (sockets reset, port
    closed), `freeze()` (answers nothing), `set_http_error(503)` (answers 503, closes
    websockets), `restart()` (a fresh process on the same port: empty queue, history
    and caches; files in input/ and output/ stay).
    """

    def __init__(self, config: FakeComfyConfig | None = None) -> None:
        self.config = config or FakeComfyConfig()
        unknown = {s.behavior for s in self.config.nodes.values()} - set(RUNNERS)
        if unknown:
            raise ValueError(f"unknown node behaviours {sorted(unknown)}; known: {sorted(RUNNERS)}")
        self.stats = FakeStats()
        self.port = self.config.port
        self.state: State | None = None
        self._folders: Folders | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._protocols: list[Any] = []
        self._worker: asyncio.Task[None] | None = None
        self.faults = FaultBook(list(self.config.faults))  # shared by every incarnation

    @property
    def url(self) -> str:
        """Base HTTP URL, e.g. http://127.0.0.1:43121."""
        return f"http://{self.config.host}:{self.port}"

    def ws_url(self, client_id: str | None = None) -> str:
        """The /ws URL, with ?clientId= when given."""
        base = f"ws://{self.config.host}:{self.port}/ws"
        return f"{base}?clientId={client_id}" if client_id else base

    @property
    def folders(self) -> Folders:
        """input/, output/ and temp/ of this fake."""
        assert self._folders is not None, "start the fake first"
        return self._folders

    @property
    def alive(self) -> bool:
        """True while listening and answering."""
        return self._listener is not None and self.state is not None and not self.state.frozen

    async def __aenter__(self) -> FakeComfyUI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def inject(self, fault: Fault) -> None:
        """Arm a fault now (it stays armed across restarts until used up)."""
        self.faults.add(fault)

    async def start(self) -> None:
        """Start listening (a new incarnation with empty queue, history and caches)."""
        if self._folders is None:
            if self.config.base_dir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="fake-comfyui-")
                base = Path(self._tmp.name)
            else:
                base = Path(self.config.base_dir)
            self._folders = Folders(base)
            example = self._folders.input / "example.png"
            if not example.exists():
                example.write_bytes(Frame.solid(64, 64, (90, 140, 200)).png())
        self._folders.clear_temp()
        state = self._new_state(self._folders)
        app = web.Application(
            client_max_size=self.config.max_upload_size,
            middlewares=[self._control_middleware(state), _origin_middleware],
        )
        for method, path, handler in route_table(state):
            for prefix in ("/api", ""):
                if method == "GET":  # RouteTableDef.get: HEAD is allowed too
                    app.router.add_get(prefix + path, handler)
                else:
                    app.router.add_route(method, prefix + path, handler)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        self._protocols = []

        def factory() -> Any:
            protocol = server()
            self._protocols.append(protocol)
            return protocol

        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            factory, self.config.host, self.port, reuse_address=True
        )
        self.port = self._listener.sockets[0].getsockname()[1]
        self.state = state
        state.idle.set()
        state.hub.start()
        self._worker = asyncio.create_task(Worker(state).run())
        self.stats.starts += 1

    def _new_state(self, folders: Folders) -> State:
        holder: list[State] = []
        queue = PromptQueue(on_change=lambda: holder[0].broadcast_status())
        hub = Hub(self.config.frame_latency_s, {})
        state = State(
            config=self.config,
            folders=folders,
            catalog=Catalog(self.config.nodes, folders),
            hub=hub,
            queue=queue,
            stats=self.stats,
            faults=self.faults,
            controls=Controls(kill=self.kill, freeze=self.freeze, http_error=self.set_http_error),
        )
        holder.append(state)
        hub.features = server_features(state)
        return state

    def _control_middleware(self, state: State) -> Any:
        @web.middleware
        async def control(request: web.Request, handler: Handler) -> web.StreamResponse:
            if state.frozen:
                await asyncio.Event().wait()  # never answers
            if state.http_error_status is not None:
                status = state.http_error_status
                text = f"{status} Internal Server Error\n\nServer got itself in trouble"
                return web.Response(
                    status=status, text=text if status == 500 else f"{status}: fake failure"
                )
            await state.hub.wait_unstalled()
            return await handler(request)

        return control

    async def _stop_tasks(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self.state is not None:
            await self.state.hub.stop()

    async def kill(self) -> None:
        """Die abruptly: stop listening and reset every open connection."""
        if self._listener is None:
            return
        self._listener.close()
        self._listener = None
        for protocol in self._protocols:
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.abort()
        await self._stop_tasks()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def freeze(self) -> None:
        """Keep the port open but answer nothing, HTTP or websocket."""
        if self.state is not None:
            self.state.frozen = True
            self.state.hub.frozen = True
            if self._worker is not None:
                self._worker.cancel()

    async def set_http_error(self, status: int | None) -> None:
        """Answer every request with `status` (None: recover); websockets are closed."""
        if self.state is None:
            return
        self.state.http_error_status = status
        if status is not None:
            if self._worker is not None:
                self._worker.cancel()
            await self.state.hub.close_all()

    async def close(self) -> None:
        """Stop gracefully and remove the temporary folder if the fake made one."""
        if self.state is not None:
            self.state.frozen = False
            self.state.hub.frozen = False
            await self.state.hub.close_all()
        await self._stop_tasks()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._folders = None

    async def restart(self, down_s: float = 0.0) -> None:
        """Kill (if running), stay down `down_s` seconds, start again on the same port."""
        await self.kill()
        if down_s > 0:
            await asyncio.sleep(down_s)
        await self.start()

    async def wait_idle(self, within_s: float = 10.0) -> None:
        """Wait until nothing is queued or running (TimeoutError after `within_s`)."""
        assert self.state is not None, "start the fake first"
        await asyncio.wait_for(self.state.idle.wait(), within_s)


@web.middleware
async def _origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if origin_forbidden(request.headers):
        return web.Response(status=403)
    if request.method == "OPTIONS":
        return web.Response()
    return await handler(request)
