"""The admin API for tenants and keys: `/api/tenants`, `/api/keys`.

Two scopes reach here (`security/rbac.py`). A platform owner manages every
tenant and every key. A tenant admin (`keys:own`, `tenant:read`) sees only
its own tenant, and within it only tenant-scoped keys: it creates, rotates,
revokes and sets the limits of its own people's keys, never a platform key
and never a key elsewhere. Anything out of reach answers 404 exactly as if
it did not exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from sparkplane.api.auth import reach, require, tenant_in_reach
from sparkplane.api.deps import record_admin, runtime
from sparkplane.errors import BadRequest, Forbidden, NotFound
from sparkplane.runtime import Runtime
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Permission, Role, Scope, default_scope
from sparkplane.security.tenancy import KeyRecord, Limits, Prices, TenantPolicy, TenantRecord

router = APIRouter(prefix="/api", tags=["security"])
TenantName = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
# A rotation's old secret works at most this long beside the new one (30 days).
MAX_OVERLAP_S = 30 * 86400
KeyName = Annotated[str, Field(max_length=100, pattern=r"^[^\x00-\x1f]*$")]


class TenantCreate(BaseModel):
    """A tenant to create."""

    name: TenantName
    policy: TenantPolicy = TenantPolicy()
    limits: Limits = Limits()
    prices: Prices = Prices()


class TenantUpdate(BaseModel):
    """Parts of a tenant to replace."""

    policy: TenantPolicy | None = None
    limits: Limits | None = None
    prices: Prices | None = None
    disabled: bool | None = None


class KeyCreate(BaseModel):
    """A key to create; the answer carries the key, once.

    `tenant` defaults to the caller's own; `scope` defaults to `platform` for
    `owner` and `operator` and to `tenant` otherwise.
    """

    tenant: TenantName | None = None
    scope: Literal["platform", "tenant"] | None = None
    role: Literal["owner", "operator", "admin", "member", "auditor"] = "member"
    name: KeyName = ""
    expires_at: datetime | None = None
    limits: Limits = Limits()


class KeyUpdate(BaseModel):
    """Parts of a key to replace."""

    name: KeyName | None = None
    limits: Limits | None = None


def _record(
    request: Request,
    who: Principal,
    action: str,
    target: str,
    tenant: TenantRecord,
    **details: Any,
) -> None:
    """Audit a change in the chain of the tenant it concerns (refused if the log is down)."""
    record_admin(request, who, action, target, tenant, **details)


# -- tenants -------------------------------------------------------------------


@router.get("/tenants", summary="List tenants")
async def list_tenants(
    request: Request, who: Principal = require(Permission.TENANT_READ)
) -> dict[str, Any]:
    """Every tenant with its policy, limits and prices (a tenant admin: its own)."""
    tenants = await runtime(request).tenants.list_tenants()
    within = reach(who, Permission.TENANTS_MANAGE)
    return {"data": [t.public() for t in tenants if within is None or t.id == within]}


@router.post("/tenants", status_code=201, summary="Create a tenant")
async def create_tenant(
    body: TenantCreate, request: Request, who: Principal = require(Permission.TENANTS_MANAGE)
) -> dict[str, Any]:
    """Create a tenant."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    tenant = await rt.tenants.create(
        body.name, policy=body.policy, limits=body.limits, prices=body.prices
    )
    _record(request, who, "tenants.create", tenant.name, tenant, **tenant.settings())
    return tenant.public()


@router.get("/tenants/{name}", summary="Show a tenant")
async def get_tenant(
    name: str, request: Request, who: Principal = require(Permission.TENANT_READ)
) -> dict[str, Any]:
    """One tenant (a tenant admin: only its own; others are 404)."""
    rt = runtime(request)
    return (await tenant_in_reach(rt.tenants, who, name, Permission.TENANTS_MANAGE)).public()


@router.patch("/tenants/{name}", summary="Change a tenant")
async def update_tenant(
    name: str,
    body: TenantUpdate,
    request: Request,
    who: Principal = require(Permission.TENANTS_MANAGE),
) -> dict[str, Any]:
    """Replace a tenant's policy, limits or prices, or disable it."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    found = await rt.tenants.get(name)
    tenant = await rt.tenants.update(
        name, policy=body.policy, limits=body.limits, prices=body.prices, disabled=body.disabled
    )
    rt.authenticator.forget()
    changes = body.model_dump(mode="json", exclude_none=True)
    _record(request, who, "tenants.update", name, found, **changes)
    return tenant.public()


# -- keys ----------------------------------------------------------------------


async def _key_in_reach(rt: Runtime, who: Principal, key_id: str) -> tuple[KeyRecord, TenantRecord]:
    """The key and its tenant if the caller may manage it; NotFound (as for no key) else.

    A tenant admin reaches the tenant-scoped keys of its own tenant only: a
    platform key living in its tenant is as invisible to it as another tenant's.
    """
    try:
        record = await rt.keys.get(key_id)
    except NotFound:
        record = None
    if (
        record is not None
        and not who.can(Permission.KEYS_ALL)
        and (not who.owns(record.tenant_id) or record.scope is not Scope.TENANT)
    ):
        record = None
    if record is None:
        raise NotFound("no such key", code="key_not_found")
    return record, await rt.tenants.get_by_id(record.tenant_id)


def _check_limits(limits: Limits, tenant: TenantRecord) -> None:
    over = limits.over(tenant.limits)
    if over is not None:
        raise BadRequest(
            f"{over} is over the tenant's own limit ({getattr(tenant.limits, over)}); "
            "a key's limits must fit within its tenant's",
            param=f"limits.{over}",
            code="over_tenant_limit",
        )


@router.get("/keys", summary="List keys")
async def list_keys(
    request: Request,
    tenant: Annotated[str | None, Query(max_length=100)] = None,
    who: Principal = require(Permission.KEYS_OWN),
) -> dict[str, Any]:
    """Keys (ids, scopes, roles, state; never the keys). A tenant admin sees its own
    tenant's tenant-scoped keys; naming another tenant is a 404."""
    rt = runtime(request)
    names = {t.id: t.name for t in await rt.tenants.list_tenants()}
    tenant_id = reach(who, Permission.KEYS_ALL)
    if tenant is not None:
        tenant_id = (await tenant_in_reach(rt.tenants, who, tenant, Permission.KEYS_ALL)).id
    scope = None if who.can(Permission.KEYS_ALL) else Scope.TENANT
    records = await rt.keys.list_keys(tenant_id, scope)
    return {"data": [r.public(names.get(r.tenant_id)) for r in records]}


@router.post("/keys", status_code=201, summary="Create a key")
async def create_key(
    body: KeyCreate, request: Request, who: Principal = require(Permission.KEYS_OWN)
) -> dict[str, Any]:
    """Create a key; `key` in the answer is shown this once and never stored.

    A tenant admin makes tenant-scoped keys (admin, member, auditor) in its own
    tenant only; a key's limits must fit within its tenant's.
    """
    rt = runtime(request)
    rt.audit.raise_if_closed()
    role = Role(body.role)
    scope = Scope(body.scope) if body.scope else default_scope(role)
    if scope is Scope.PLATFORM and not who.can(Permission.KEYS_ALL):
        raise Forbidden(f"the {who.grant} role may not create platform keys")
    name = body.tenant or who.tenant or who.tenant_id
    tenant = await tenant_in_reach(rt.tenants, who, name, Permission.KEYS_ALL)
    _check_limits(body.limits, tenant)
    record, key = await rt.keys.create(
        tenant, role, scope=scope, name=body.name, expires_at=body.expires_at, limits=body.limits
    )
    _record(
        request,
        who,
        "keys.create",
        record.id,
        tenant,
        scope=record.scope.value,
        role=record.role.value,
    )
    return {**record.public(tenant.name), "key": key}


@router.patch("/keys/{key_id}", summary="Change a key")
async def update_key(
    key_id: str, body: KeyUpdate, request: Request, who: Principal = require(Permission.KEYS_OWN)
) -> dict[str, Any]:
    """Replace a key's label or limits (within its tenant's limits)."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    record, tenant = await _key_in_reach(rt, who, key_id)
    if body.limits is not None:
        _check_limits(body.limits, tenant)
    updated = await rt.keys.update(record.id, name=body.name, limits=body.limits)
    rt.authenticator.forget()
    changes = body.model_dump(mode="json", exclude_none=True)
    _record(request, who, "keys.update", record.id, tenant, **changes)
    return updated.public(tenant.name)


class KeyRotate(BaseModel):
    """How to rotate: how long the old secret keeps working beside the new one."""

    overlap_s: int = Field(0, ge=0, le=MAX_OVERLAP_S)


@router.post("/keys/{key_id}/rotate", summary="Rotate a key")
async def rotate_key(
    key_id: str,
    request: Request,
    body: KeyRotate | None = None,
    who: Principal = require(Permission.KEYS_OWN),
) -> dict[str, Any]:
    """A new secret for the key (same id, role and limits). The old one keeps working
    for `overlap_s` seconds (default 0: it stops within `auth_cache_s`), so clients
    can move over without a gap. `key` in the answer is shown this once."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    record, tenant = await _key_in_reach(rt, who, key_id)
    overlap = (body or KeyRotate()).overlap_s
    rotated, key = await rt.keys.rotate(record.id, timedelta(seconds=overlap))
    rt.authenticator.forget()
    _record(request, who, "keys.rotate", record.id, tenant, overlap_s=overlap)
    return {**rotated.public(tenant.name), "key": key}


@router.delete("/keys/{key_id}", summary="Revoke a key")
async def revoke_key(
    key_id: str, request: Request, who: Principal = require(Permission.KEYS_OWN)
) -> dict[str, Any]:
    """Revoke a key; every process refuses it within `auth_cache_s`."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    record, tenant = await _key_in_reach(rt, who, key_id)
    revoked = await rt.keys.revoke(record.id)
    rt.authenticator.forget()
    _record(request, who, "keys.revoke", record.id, tenant)
    return revoked.public(tenant.name)
