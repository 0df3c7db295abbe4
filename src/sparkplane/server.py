"""Running the app under uvicorn with a drain on SIGTERM/SIGINT.

On the first signal readiness turns 503 at once, new requests get 503, and the
process waits (up to `drain_timeout_s`) for in-flight requests, long streams
included, before it exits. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from types import FrameType

import structlog
import uvicorn

from sparkplane.app import create_app
from sparkplane.config import Settings
from sparkplane.lifecycle import Lifecycle

log = structlog.get_logger("sparkplane.server")


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain step before its own shutdown."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_timeout: float) -> None:
        super().__init__(config)
        self._lifecycle = lifecycle
        self._drain_timeout = drain_timeout
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._lifecycle.draining or self._loop is None:
            log.warning("forced_exit", action="server.exit", signal=signal.Signals(sig).name)
            # A second signal means now: no graceful wait for open connections.
            self.should_exit = True
            self.force_exit = True
            return
        self._lifecycle.begin_drain()
        log.info(
            "draining",
            action="server.drain",
            signal=signal.Signals(sig).name,
            inflight=self._lifecycle.active,
            timeout_s=self._drain_timeout,
        )
        self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._drain()))

    async def _drain(self) -> None:
        idle = await self._lifecycle.wait_idle(self._drain_timeout)
        log.info(
            "drained" if idle else "drain_timeout",
            action="server.drain",
            inflight=self._lifecycle.active,
        )
        self.should_exit = True
        # The drain window is the whole grace period: past it, close what is left
        # at once rather than wait out uvicorn's own graceful timeout as well.
        self.force_exit = not idle


def serve(settings: Settings, *, discover: bool) -> None:
    """Serve sparkplane until a signal asks it to stop."""
    lifecycle = Lifecycle()
    app = create_app(settings, lifecycle=lifecycle, discover=discover)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        # sparkplane uses no client address; skipping X-Forwarded-* parsing saves
        # work on every request.
        proxy_headers=False,
        timeout_graceful_shutdown=5,
        # Long idle keep-alives suit gateways whose clients reuse connections.
        timeout_keep_alive=30,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
    )
    config.load()
    if config.ssl is not None:
        harden(config.ssl)
    DrainingServer(config, lifecycle, settings.drain_timeout_s).run()


def harden(context: ssl.SSLContext) -> None:
    """TLS 1.2 as the floor (1.3 is negotiated whenever the client can)."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
