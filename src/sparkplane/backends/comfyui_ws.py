"""One websocket to a ComfyUI device, opened for one sparkplane client id."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import orjson

from sparkplane.backends.base import DeviceUnreachable
from sparkplane.backends.workflow import Frame

# Pings keep a dead TCP peer from going unnoticed (a frozen server still answers them,
# which the worker's own checks catch).
HEARTBEAT_S = 10.0


class DeviceSocket:
    """Frames from `/ws?clientId=...`; see `backends.workflow.EventStream`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    @classmethod
    async def open(
        cls,
        session: aiohttp.ClientSession,
        url: str,
        client_id: str,
        preview_metadata: bool,
        timeout: float,
    ) -> DeviceSocket:
        """Connect, optionally negotiate metadata previews, and return the socket."""
        try:
            ws = await asyncio.wait_for(
                session.ws_connect(
                    url, params={"clientId": client_id}, heartbeat=HEARTBEAT_S, max_msg_size=0
                ),
                timeout,
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeviceUnreachable(f"websocket to {url} failed: {exc}"[:300]) from exc
        if preview_metadata:
            flags = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
            await ws.send_str(orjson.dumps(flags).decode())
        return cls(ws)

    async def receive(self, timeout: float) -> Frame | None:
        """The next frame, None after `timeout` seconds of silence."""
        try:
            msg = await self._ws.receive(timeout=timeout)
        except TimeoutError:
            return None
        except aiohttp.ClientError as exc:
            raise DeviceUnreachable(f"device websocket broke: {exc}"[:300]) from exc
        if msg.type == aiohttp.WSMsgType.TEXT:
            try:
                message = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                return Frame(message={"type": "unparsed", "data": {}})
            return Frame(message=message if isinstance(message, dict) else {})
        if msg.type == aiohttp.WSMsgType.BINARY:
            return Frame(data=msg.data)
        raise DeviceUnreachable(f"device websocket closed ({msg.type.name})")

    async def close(self) -> None:
        """Close the socket."""
        with contextlib.suppress(Exception):
            await self._ws.close()
