"""The one ASGI middleware on every request: request id, drain refusal, body
limit, in-flight count, and the hand-off of inference requests to the hot path
in `api/openai.py`. Pure ASGI (no BaseHTTPMiddleware) to keep the proxy cheap."""

from __future__ import annotations

import math
import os
import re
from typing import TYPE_CHECKING

import orjson
import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sparkplane.api import openai
from sparkplane.api.auth import PRINCIPAL, presented_key, principal_of
from sparkplane.api.errors import error_body
from sparkplane.errors import SparkplaneError
from sparkplane.lifecycle import Lifecycle
from sparkplane.security.principal import ANONYMOUS, PUBLIC

log = structlog.get_logger("sparkplane.api")

if TYPE_CHECKING:
    from sparkplane.runtime import Runtime

# Answered while draining: orchestrators need them to see the process go.
ALWAYS_SERVED = frozenset({"/healthz", "/readyz", "/metrics"})
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
_JSON = (b"content-type", b"application/json")
DISCARD_LIMIT = 64 * 1024 * 1024
ADMIN_PREFIX = "/api/"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
# File uploads have their own limit (max_upload_bytes), not the JSON body limit.
UPLOAD_ROUTES = frozenset({"/upload/image", "/api/upload/image"})
# The admin API answers JSON to programs: nothing in it should be framed, sniffed,
# cached or allowed to load anything.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)


class GatewayMiddleware:
    """Wraps the app; see module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        lifecycle: Lifecycle,
        max_body: int,
        auth_enabled: bool,
        public_paths: frozenset[str],
        tls: bool = False,
        max_upload: int | None = None,
    ) -> None:
        self.app = app
        self.lifecycle = lifecycle
        self.max_body = max_body
        self.max_upload = max_upload or max_body
        self.auth_enabled = auth_enabled
        self.public_paths = public_paths
        self.security_headers = list(SECURITY_HEADERS)
        if tls:
            self.security_headers.append(
                (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
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
            await _error(
                send,
                503,
                "sparkplane is shutting down",
                "service_unavailable",
                "shutting_down",
                rid_header,
            )
            return
        limit = self.max_upload if scope["path"] in UPLOAD_ROUTES else self.max_body
        if length > limit:
            await _too_large(send, limit, rid_header)
            return
        if "\x00" in scope["path"] or b"%00" in scope["query_string"]:
            # No name, id or filter sparkplane knows contains NUL, and databases refuse it.
            await _error(
                send,
                400,
                "NUL characters are not allowed in the URL",
                "invalid_request_error",
                "invalid_request",
                rid_header,
            )
            return

        try:
            await self._authenticate(scope)
        except SparkplaneError as exc:
            await _error(
                send,
                exc.status,
                exc.message,
                exc.type,
                exc.code,
                rid_header,
                www_authenticate=exc.status == 401,
                retry_after=getattr(exc, "retry_after", None),
            )
            return
        structlog.contextvars.bind_contextvars(request_id=request_id.decode())

        extra = [rid_header]
        admin = scope["path"].startswith(ADMIN_PREFIX)
        if admin:
            extra.extend(self.security_headers)
        # A change's answer leaves only once its audit entry is durable (journal or database).
        settle = admin and scope["method"] not in _READS
        refused = False

        async def send_with_id(message: Message) -> None:
            nonlocal refused
            if refused:
                return  # the answer was replaced by the refusal below
            if message["type"] == "http.response.start":
                if message["status"] == 403 and self.auth_enabled:
                    # A valid key refused a permission: on the record, with its source.
                    rt: Runtime = scope["state"]["runtime"]
                    rt.guard.denied(principal_of(scope), source=_source(scope), path=scope["path"])
                if settle:
                    try:
                        await scope["state"]["runtime"].audit.settled()
                    except SparkplaneError as exc:
                        refused = True
                        await _error(send, exc.status, exc.message, exc.type, exc.code, rid_header)
                        return
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        self.lifecycle.enter()
        try:
            if scope["path"] in openai.INFERENCE_ROUTES and scope["method"] != "POST":
                await _error(
                    send,
                    405,
                    "use POST",
                    "invalid_request_error",
                    "method_not_allowed",
                    rid_header,
                    allow=b"POST",
                )
                return
            if scope["method"] == "POST" and scope["path"] in openai.INFERENCE_ROUTES:
                body = await _read_body(receive, self.max_body)
                if body is None:
                    await _too_large(send, self.max_body, rid_header)
                else:
                    await _guarded(scope, receive, send_with_id, body)
                return
            if length < 0:
                receive = _limited(receive, limit)
            await self.app(scope, receive, send_with_id)
        finally:
            self.lifecycle.leave()
            structlog.contextvars.unbind_contextvars("request_id")

    async def _authenticate(self, scope: Scope) -> None:
        """Put the caller in the scope (ANONYMOUS when auth is off or the path is public)."""
        if not self.auth_enabled or scope["path"] in self.public_paths:
            scope[PRINCIPAL] = ANONYMOUS if not self.auth_enabled else PUBLIC
            return
        rt: Runtime = scope["state"]["runtime"]
        scope[PRINCIPAL] = await rt.guard.authenticate(
            presented_key(scope), source=_source(scope), path=scope["path"]
        )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.lifecycle.draining:
            await send({"type": "websocket.close", "code": 1001})
            return
        try:
            await self._authenticate(scope)
        except SparkplaneError:
            # Refusing before accept answers the handshake with HTTP 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        self.lifecycle.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.lifecycle.leave()


def _source(scope: Scope) -> str:
    """The peer's address (as the server saw it, or as a trusted proxy forwarded it)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _guarded(scope: Scope, receive: Receive, send: Send, body: bytes) -> None:
    """Run the hot path; an unexpected error becomes a 500 in OpenAI's format (the
    framework's error handling is not around it), never a dropped connection."""
    started = False

    async def tracking(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await openai.inference(scope, receive, tracking, body)
    except Exception:
        log.exception("unhandled_error", action="api.error")
        if not started:
            body = orjson.dumps(error_body("internal error", "internal_error", "internal_error"))
            await send({"type": "http.response.start", "status": 500, "headers": [_JSON]})
            await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when it passes `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            await _discard(receive, size, limit + DISCARD_LIMIT)
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _discard(receive: Receive, size: int, cap: int) -> None:
    """Read and drop the rest of an oversize body, so the client can read our 413
    instead of a reset; past `cap` we stop and the connection closes."""
    while size <= cap:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        size += len(message.get("body", b""))


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


async def _too_large(send: Send, limit: int, rid: tuple[bytes, bytes]) -> None:
    await _error(
        send,
        413,
        f"request body is over the {limit}-byte limit",
        "invalid_request_error",
        "payload_too_large",
        rid,
    )


async def _error(
    send: Send,
    status: int,
    message: str,
    type_: str,
    code: str,
    rid: tuple[bytes, bytes],
    *,
    www_authenticate: bool = False,
    allow: bytes | None = None,
    retry_after: float | None = None,
) -> None:
    body = orjson.dumps(error_body(message, type_, code))
    headers = [_JSON, (b"content-length", str(len(body)).encode()), rid]
    if allow is not None:
        headers.append((b"allow", allow))
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
    if www_authenticate:
        headers.append((b"www-authenticate", b'Bearer realm="sparkplane"'))
    else:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
