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

from sparkplane.errors import Forbidden, NotFound
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Permission
from sparkplane.security.store import TenantStore
from sparkplane.security.tenancy import TenantRecord

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
                f"the {principal.grant} role may not do this (needs {permission.value})"
            )
        return principal

    return Depends(check)


def no_such_tenant(name: str) -> NotFound:
    """The answer for a tenant the caller cannot see: the same whether it exists or not."""
    return NotFound(f"no tenant named {name!r}", code="tenant_not_found")


async def tenant_in_reach(
    tenants: TenantStore, principal: Principal, name: str, every: Permission
) -> TenantRecord:
    """The tenant `name` (a name or an id) if the caller may act on it, else NotFound.

    A caller holding `every` (a platform permission) reaches any tenant; anyone
    else only its own, and any other name answers exactly as a tenant that does
    not exist, so tenant names and ids do not leak.
    """
    if principal.can(every):
        try:
            return await tenants.get(name)
        except NotFound:
            try:
                return await tenants.get_by_id(name)
            except NotFound:
                raise no_such_tenant(name) from None
    if principal.tenant_id and name in (principal.tenant, principal.tenant_id):
        return await tenants.get_by_id(principal.tenant_id)
    raise no_such_tenant(name)


def reach(principal: Principal, every: Permission) -> str | None:
    """The tenant id a listing is confined to: None (every tenant) for a caller with
    `every`, else the caller's own."""
    return None if principal.can(every) else principal.tenant_id
