"""The ComfyUI websocket, `/ws?clientId=...` (also `/api/ws`).

Authenticated by the gateway middleware like every route (a browser passes the
key as `token=`); needs `inference`. On connect the client gets `status` with
`sid` (its clientId, or a generated hex id), and `executing {"node": id}` if its
prompt is executing; its first message may negotiate `feature_flags`. See
`jobs/hub.py` for the delivery rules.
"""

from __future__ import annotations

import asyncio
import uuid

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from sparkplane.api.auth import principal_of
from sparkplane.api.comfy import features
from sparkplane.api.deps import runtime
from sparkplane.jobs.hub import ClientSocket, text
from sparkplane.jobs.service import status_body
from sparkplane.security.rbac import Permission

router = APIRouter()
DRAIN_CHECK_S = 1.0


async def websocket(ws: WebSocket) -> None:
    """One client socket."""
    principal = principal_of(ws.scope)
    if not principal.can(Permission.INFERENCE):
        await ws.close(code=1008)  # before accept: the handshake is answered 403
        return
    rt = runtime(ws)
    svc = rt.comfy
    client_id = ws.query_params.get("clientId") or uuid.uuid4().hex
    await ws.accept()

    async def send(frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_text(frame)

    sock = ClientSocket(principal.tenant_id, client_id, send)
    remaining = await svc.store.remaining(principal.tenant_id)
    sock.put(text("status", {**status_body(remaining), "sid": client_id}))
    node = svc.hub.current_node(principal.tenant_id, client_id)
    if node is not None:
        sock.put(text("executing", {"node": node}))
    svc.hub.register(sock)
    first = True
    try:
        while not rt.lifecycle.draining:
            try:
                message = await asyncio.wait_for(ws.receive_text(), DRAIN_CHECK_S)
            except TimeoutError:
                continue
            if first:
                _negotiate(sock, message, rt.settings.max_upload_bytes)
            first = False
        # Draining: a ComfyUI app keeps its socket open forever; tell it to reconnect
        # (to another replica) instead of holding the shutdown up.
        await ws.close(code=1001)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        svc.hub.unregister(sock)
        await sock.close()


def _negotiate(sock: ClientSocket, message: str, max_upload: int) -> None:
    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError:
        return
    if isinstance(data, dict) and data.get("type") == "feature_flags":
        flags = data.get("data")
        sock.preview_metadata = (
            isinstance(flags, dict) and flags.get("supports_preview_metadata") is True
        )
        sock.put(text("feature_flags", features(max_upload)))


for _prefix in ("", "/api"):
    router.add_api_websocket_route(_prefix + "/ws", websocket)
