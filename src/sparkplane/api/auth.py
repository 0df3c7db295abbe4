"""Keys on the wire, and the permission checks routes declare.

A key comes as `Authorization: Bearer sp-...` or `x-api-key: sp-...`; a
websocket may pass it as the `token` query parameter (browsers cannot set
headers on websockets). The gateway middleware authenticates once per request
and leaves the Principal in the ASGI scope for the routes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from starlette.types import Scope

from sparkplane.errors import Forbidden
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Permission

PRINCIPAL = "sparkplane.principal"
# Reachable without a key: probes and the API's own description.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"})


def presented_key(scope: Scope) -> str | None:
    """The key a request carries, if any."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value:
            return bytes(value).decode("latin-1").strip()
    if scope["type"] == "websocket":
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        for name, value in parse_qsl(query):
            if name == "token" and value:
                return str(value)
    return None


def principal_of(scope: Scope) -> Principal:
    """The caller the middleware authenticated."""
    principal: Principal = scope[PRINCIPAL]
    return principal


def require(permission: Permission) -> Any:
    """A route dependency: the caller, who must hold `permission` (403 otherwise)."""

    def check(request: Request) -> Principal:
        principal = principal_of(request.scope)
        if not principal.can(permission):
            raise Forbidden(
                f"the {principal.role.value} role may not do this (needs {permission.value})"
            )
        return principal

    return Depends(check)
