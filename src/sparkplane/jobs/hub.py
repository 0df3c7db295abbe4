"""Client websockets (`/ws?clientId=...`), with ComfyUI's delivery rules.

- Sockets are kept per (tenant, clientId): two tenants may use the same clientId
  and never see each other's frames.
- Only the newest socket of a clientId receives anything; an older one stays
  open and silent (as in ComfyUI).
- Frames for a clientId with no socket are dropped; after a reconnect the node
  the client's prompt is executing is re-sent as `{"node": id}` (no prompt_id).
- Each socket has its own outgoing queue and writer, so a slow client never
  holds up a job or other clients; order per socket is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

Sender = Callable[[str | bytes], Awaitable[None]]
# A socket whose client does not read is dropped past this many queued frames.
MAX_BACKLOG = 10_000


class ClientSocket:
    """One client websocket's outgoing side."""

    def __init__(self, tenant_id: str, client_id: str, send: Sender) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.preview_metadata = False
        self._send = send
        self._queue: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write())

    def put(self, frame: str | bytes) -> None:
        """Queue a frame (dropped if the client stopped reading long ago)."""
        if self._queue.qsize() < MAX_BACKLOG:
            self._queue.put_nowait(frame)

    async def _write(self) -> None:
        while (frame := await self._queue.get()) is not None:
            try:
                await self._send(frame)
            except Exception:  # noqa: BLE001 - the client went away; its reader ends too
                return

    async def close(self) -> None:
        """Stop writing (pending frames are dropped)."""
        self._queue.put_nowait(None)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer


def text(kind: str, data: dict[str, Any]) -> str:
    """A ComfyUI text frame."""
    return orjson.dumps({"type": kind, "data": data}).decode()


class Hub:
    """Every client socket of this process."""

    def __init__(self) -> None:
        self._sockets: dict[tuple[str, str], ClientSocket] = {}
        self._executing: dict[tuple[str, str], str] = {}

    def register(self, sock: ClientSocket) -> None:
        """Make `sock` the one socket of its clientId."""
        self._sockets[(sock.tenant_id, sock.client_id)] = sock

    def unregister(self, sock: ClientSocket) -> None:
        """Forget `sock` if it is still the registered one."""
        key = (sock.tenant_id, sock.client_id)
        if self._sockets.get(key) is sock:
            del self._sockets[key]

    def connected(self, tenant_id: str) -> bool:
        """Whether the tenant has any socket here (status broadcasts are skipped if not)."""
        return any(t == tenant_id for t, _ in self._sockets)

    def send(self, tenant_id: str, client_id: str, frame: str | bytes) -> None:
        """To one client's newest socket, if it has one."""
        sock = self._sockets.get((tenant_id, client_id))
        if sock is not None:
            sock.put(frame)

    def broadcast(self, tenant_id: str, frame: str | bytes) -> None:
        """To every socket of a tenant."""
        for (tenant, _), sock in list(self._sockets.items()):
            if tenant == tenant_id:
                sock.put(frame)

    def preview_metadata(self, tenant_id: str, client_id: str | None) -> bool:
        """Whether this client asked for previews with metadata (type-4 binary frames)."""
        if client_id is None:
            return False
        sock = self._sockets.get((tenant_id, client_id))
        return sock is not None and sock.preview_metadata

    def executing(self, tenant_id: str, client_id: str, node: str | None) -> None:
        """Remember the node a client's prompt is executing (None: finished)."""
        if node is None:
            self._executing.pop((tenant_id, client_id), None)
        else:
            self._executing[(tenant_id, client_id)] = node

    def current_node(self, tenant_id: str, client_id: str) -> str | None:
        """The node to re-send to a client that reconnects."""
        return self._executing.get((tenant_id, client_id))

    async def close(self) -> None:
        """Stop every writer (at shutdown)."""
        for sock in list(self._sockets.values()):
            await sock.close()
        self._sockets.clear()
