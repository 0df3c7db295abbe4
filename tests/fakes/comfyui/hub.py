"""The websocket side: sockets by clientId, one outgoing queue, ComfyUI's routing rules.

- Frames are produced with `send_sync` (like PromptServer.send_sync) into one queue; a
  publisher task delivers them, resolving the clientId to a socket at delivery time:
  frames for an id with no socket are dropped, frames still queued when a client
  reconnects go to the new socket. `sid=None` means every socket.
- Only the newest socket per clientId is registered. When any socket of that id
  closes, the id is unregistered (ComfyUI pops by id, so closing an old duplicate
  silences the new one too).
- On connect: `status` with `sid`, then `executing {"node": id}` (no prompt_id) if the
  running prompt belongs to this id. The first text message may negotiate
  feature_flags; only then is the server's feature_flags sent back.
- Latency: every frame leaves `frame_latency_s` after it was produced, and nothing
  leaves while the server is stalled (the GC model) or frozen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4


@dataclass
class _Frame:
    event: str | int  # text event type, or binary event number
    payload: Any  # data dict, or bytes after the 4-byte event number
    sid: str | None
    produced_at: float


class Hub:
    """Websocket registry and outgoing frame queue of one fake server."""

    def __init__(self, frame_latency_s: float, features: dict[str, Any]) -> None:
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.metadata: dict[str, dict[str, Any]] = {}
        self.every_socket: set[web.WebSocketResponse] = set()
        self.client_id: str | None = None  # client of the prompt being executed
        self.last_node_id: str | None = None  # node being executed, if it has a client
        self.features = features
        self.frame_latency_s = frame_latency_s
        self.frozen = False
        self._queue: asyncio.Queue[_Frame] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._stall_until = 0.0
        self._publisher: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start delivering frames."""
        self._publisher = asyncio.create_task(self._publish_loop())

    async def stop(self) -> None:
        """Stop delivering (queued frames are dropped)."""
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher

    def send_sync(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        """Queue a text frame {"type": event, "data": data} for one client or all."""
        self._queue.put_nowait(_Frame(event, data, sid, _now()))

    def send_binary(self, event_type: int, payload: bytes, sid: str | None) -> None:
        """Queue a binary frame: 4-byte big-endian event type, then payload."""
        self._queue.put_nowait(_Frame(event_type, payload, sid, _now()))

    def supports_preview_metadata(self, sid: str | None) -> bool:
        """Whether this client negotiated supports_preview_metadata."""
        if sid is None:
            return False
        flags = self.metadata.get(sid, {}).get("feature_flags", {})
        return bool(flags.get("supports_preview_metadata", False))

    def stall(self, seconds: float) -> None:
        """Hold every frame (and, through the server, HTTP answers) for `seconds`."""
        self._stall_until = max(self._stall_until, _now() + seconds)

    async def wait_unstalled(self) -> None:
        """Return once no stall is in effect."""
        delay = self._stall_until - _now()
        while delay > 0:  # a stall may be extended while we sleep
            await asyncio.sleep(delay)
            delay = self._stall_until - _now()

    async def _publish_loop(self) -> None:
        while True:
            frame = await self._queue.get()
            while True:
                due = max(frame.produced_at + self.frame_latency_s, self._stall_until)
                if (delay := due - _now()) <= 0 and not self.frozen:
                    break
                await asyncio.sleep(delay if delay > 0 else 0.05)
            async with self._lock:
                await self._deliver(frame)

    async def _deliver(self, frame: _Frame) -> None:
        if frame.sid is None:
            targets = list(self.sockets.values())
        elif frame.sid in self.sockets:
            targets = [self.sockets[frame.sid]]
        else:
            return
        for ws in targets:
            await _send(ws, frame.event, frame.payload)

    async def handle(
        self, request: web.Request, queue_info: Callable[[], dict[str, Any]]
    ) -> web.WebSocketResponse:
        """The /ws handler."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId", "")
        if sid:
            self.sockets.pop(sid, None)
        else:
            sid = uuid.uuid4().hex
        self.every_socket.add(ws)
        try:
            async with self._lock:
                self.sockets[sid] = ws
                self.metadata[sid] = {"feature_flags": {}}
                await _send(ws, "status", {"status": queue_info(), "sid": sid})
                if self.client_id == sid and self.last_node_id is not None:
                    await _send(ws, "executing", {"node": self.last_node_id})
            await self._read(ws, sid)
        finally:
            self.sockets.pop(sid, None)
            self.metadata.pop(sid, None)
            self.every_socket.discard(ws)
        return ws

    async def _read(self, ws: web.WebSocketResponse, sid: str) -> None:
        first_message = True
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except json.JSONDecodeError:
                continue
            try:
                if first_message and data.get("type") == "feature_flags":
                    self.metadata[sid]["feature_flags"] = data.get("data", {})
                    if sid in self.sockets:
                        async with self._lock:
                            await _send(self.sockets[sid], "feature_flags", dict(self.features))
            except (AttributeError, KeyError, TypeError):
                pass  # ComfyUI logs and ignores a malformed message
            first_message = False

    async def close_all(self) -> None:
        """Close every websocket with a close frame."""
        for ws in list(self.every_socket):
            with contextlib.suppress(Exception):
                await ws.close()


async def _send(ws: web.WebSocketResponse, event: str | int, payload: Any) -> None:
    if ws.closed:
        return
    try:
        if isinstance(event, int):
            await ws.send_bytes(struct.pack(">I", event) + payload)
        else:
            await ws.send_str(json.dumps({"type": event, "data": payload}))
    except (ConnectionError, RuntimeError, aiohttp.ClientError):
        pass  # ComfyUI logs "send error" and carries on


def _now() -> float:
    return asyncio.get_running_loop().time()
