"""The one ASGI middleware on every request: request id, drain refusal, body
limit, in-flight count. Pure ASGI (no BaseHTTPMiddleware) to keep the proxy
path cheap."""

from __future__ import annotations

import os
import re

import orjson
import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sparkplane.api.errors import error_body
from sparkplane.lifecycle import Lifecycle

# Answered while draining: orchestrators need them to see the process go.
ALWAYS_SERVED = frozenset({"/healthz", "/readyz", "/metrics"})
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


def _json(
    status: int, message: str, type_: str, code: str
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = orjson.dumps(error_body(message, type_, code))
    return body, [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]


class GatewayMiddleware:
    """Wraps the app; see module docstring."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle, max_body: int) -> None:
        self.app = app
        self.lifecycle = lifecycle
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b""
        length = -1
        for key, value in scope["headers"]:
            if key == b"x-request-id" and _REQUEST_ID.match(value):
                request_id = value
            elif key == b"content-length":
                length = int(value) if value.isdigit() else -1
        if not request_id:
            request_id = os.urandom(8).hex().encode()
        rid_header = (b"x-request-id", request_id)

        if self.lifecycle.draining and scope["path"] not in ALWAYS_SERVED:
            body, headers = _json(
                503, "sparkplane is shutting down", "service_unavailable", "shutting_down"
            )
            await _respond(send, 503, [*headers, rid_header, (b"connection", b"close")], body)
            return
        if length > self.max_body:
            body, headers = _json(
                413,
                f"request body is over the {self.max_body}-byte limit",
                "invalid_request_error",
                "payload_too_large",
            )
            await _respond(send, 413, [*headers, rid_header, (b"connection", b"close")], body)
            return

        structlog.contextvars.bind_contextvars(request_id=request_id.decode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        if length < 0:
            receive = _limited(receive, self.max_body)
        self.lifecycle.enter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.lifecycle.leave()
            structlog.contextvars.unbind_contextvars("request_id")


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # HTTPException passes through the framework's body parsing untouched
                # and is turned into the 413 error body in api/errors.py.
                raise HTTPException(413, f"request body is over the {limit}-byte limit")
        return message

    return wrapped


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
