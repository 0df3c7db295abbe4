"""`sparkplane agent`: serve the agent API, join the server, send heartbeats,
resume what the server wants, and stop every engine on the way out.

The node's key is kept in `home/node.json` (readable by the agent's user
only), so a restarted agent rejoins with it after its join token expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import structlog
import uvicorn

from sparkplane.agent.client import ServerClient, client_ssl
from sparkplane.agent.credentials import new_agent_key
from sparkplane.agent.node import NodeAgent, NodeConfig
from sparkplane.agent.protocol import Heartbeat, JoinRequest
from sparkplane.agent.service import build_app
from sparkplane.errors import Unauthorized, UpstreamError

log = structlog.get_logger("sparkplane.agent")


@dataclass
class AgentOptions:
    """Everything `sparkplane agent` was told."""

    server: str
    token: str | None
    node: NodeConfig
    port: int = 8401
    advertise: str | None = None
    ca_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    retry_s: float = 2.0


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the agent stops its engines first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def advertised_url(options: AgentOptions) -> str:
    """The agent API's URL as the server should call it. A wildcard bind address is
    sent as is; the server puts in the address it sees the agent at."""
    if options.advertise:
        return options.advertise.rstrip("/")
    scheme = "https" if options.tls_cert else "http"
    host = options.node.host
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{options.port}"


def _state_file(options: AgentOptions) -> Path:
    return options.node.home / "node.json"


def _saved_key(options: AgentOptions) -> str | None:
    try:
        doc = json.loads(_state_file(options).read_text())
    except (OSError, ValueError):
        return None
    same = doc.get("server") == options.server and doc.get("name") == options.node.name
    return str(doc["node_key"]) if same and doc.get("node_key") else None


def _save_key(options: AgentOptions, node_id: str, node_key: str) -> None:
    path = _state_file(options)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"server": options.server, "name": options.node.name, "node_id": node_id}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({**doc, "node_key": node_key}, out)


class AgentRun:
    """One run of the agent, from joining to the last engine stopped."""

    def __init__(self, options: AgentOptions, http: aiohttp.ClientSession) -> None:
        self.options = options
        self.agent = NodeAgent(options.node, http)
        self.client = ServerClient(options.server, http)
        self.agent_key = new_agent_key()
        self.stopping = asyncio.Event()
        self.heartbeat_s = 5.0
        self.node_key: str | None = None

    async def join(self) -> None:
        """Join (or rejoin) until the server answers; Unauthorized when it refuses."""
        request = JoinRequest(
            name=self.options.node.name,
            url=advertised_url(self.options),
            agent_key=self.agent_key,
            hardware=await self.agent.hardware(),
            models=await self.agent.models(),
        )
        credentials = [c for c in (_saved_key(self.options), self.options.token) if c]
        if not credentials:
            raise Unauthorized("no join token: make one with `sparkplane nodes token`")
        while not self.stopping.is_set():
            for credential in credentials:
                try:
                    answer = await self.client.join(credential, request)
                except Unauthorized:
                    if credential is credentials[-1]:
                        raise
                    continue
                except UpstreamError as exc:
                    log.warning("server_unreachable", action="agent.join", reason=exc.message)
                    break
                self.node_key, self.heartbeat_s = answer.node_key, answer.heartbeat_s
                _save_key(self.options, answer.node_id, answer.node_key)
                log.info("joined", action="agent.join", node=self.options.node.name,
                         node_id=answer.node_id, server=self.options.server)  # fmt: skip
                return
            await self._pause(self.options.retry_s)

    async def beat(self) -> None:
        """One heartbeat, and the server's wishes carried out."""
        assert self.node_key is not None
        beat = Heartbeat(
            hardware=await self.agent.hardware(),
            models=await self.agent.models(),
            deployments=self.agent.statuses(),
        )
        asked_at = time.monotonic()
        answer = await self.client.heartbeat(self.node_key, beat)
        await self.agent.reconcile(answer.deployments, asked_at)

    async def heartbeats(self) -> None:
        """Heartbeats every `heartbeat_s`, and at once after a deployment changed."""
        while not self.stopping.is_set():
            self.agent.changed.clear()
            try:
                await self.beat()
            except Unauthorized:
                log.warning("node_key_refused", action="agent.heartbeat")
                await self.join()
                continue
            except UpstreamError as exc:
                log.warning("heartbeat_failed", action="agent.heartbeat", reason=exc.message)
            changed = asyncio.create_task(self.agent.changed.wait())
            stopping = asyncio.create_task(self.stopping.wait())
            await asyncio.wait(
                {changed, stopping}, timeout=self.heartbeat_s, return_when="FIRST_COMPLETED"
            )
            for task in (changed, stopping):
                task.cancel()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)


def _server_ssl(options: AgentOptions) -> ssl.SSLContext | None:
    if urlsplit(options.server).scheme != "https":
        return None
    return client_ssl(options.ca_file)


async def run(options: AgentOptions) -> None:
    """Run the agent until SIGTERM or SIGINT; every engine is stopped before it returns."""
    connector = aiohttp.TCPConnector(ssl=_server_ssl(options) or False)
    async with aiohttp.ClientSession(connector=connector) as http:
        session = AgentRun(options, http)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, session.stopping.set)
        config = uvicorn.Config(
            build_app(session.agent, session.agent_key),
            host=options.node.host,
            port=options.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            ssl_certfile=options.tls_cert,
            ssl_keyfile=options.tls_key,
        )
        server = _QuietServer(config)
        serving = asyncio.create_task(server.serve(), name="agent-api")
        try:
            while not server.started:
                if serving.done():
                    await serving  # raises why it could not listen
                    raise OSError(f"the agent API could not listen on port {options.port}")
                await asyncio.sleep(0.05)
            await session.join()
            if session.node_key is None:
                return  # stopped before the server answered
            beating = asyncio.create_task(session.heartbeats(), name="heartbeats")
            stopped = asyncio.create_task(session.stopping.wait())
            await asyncio.wait({beating, stopped}, return_when="FIRST_COMPLETED")
            stopped.cancel()
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating  # re-raises why heartbeats ended (the node was refused)
        finally:
            await session.agent.close()
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await serving
            log.info("stopped", action="agent.stop", node=options.node.name)
