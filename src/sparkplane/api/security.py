"""The admin API for tenants and keys: `/api/tenants`, `/api/keys`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from sparkplane.api.auth import require
from sparkplane.api.deps import record_admin, runtime
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Permission, Role
from sparkplane.security.tenancy import Limits, Prices, TenantPolicy

router = APIRouter(prefix="/api", tags=["security"])
TenantName = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


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
    """A key to create; the answer carries the key, once."""

    tenant: TenantName
    role: Literal["admin", "operator", "member", "auditor"] = "member"
    name: Annotated[str, Field(max_length=100, pattern=r"^[^\x00-\x1f]*$")] = ""
    expires_at: datetime | None = None
    limits: Limits = Limits()


@router.get("/tenants", summary="List tenants")
async def list_tenants(
    request: Request, _: Principal = require(Permission.TENANTS_MANAGE)
) -> dict[str, Any]:
    """Every tenant with its policy, limits and prices."""
    return {"data": [t.public() for t in await runtime(request).tenants.list_tenants()]}


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
    record_admin(request, who, "tenants.create", tenant.name, **tenant.settings())
    return tenant.public()


@router.get("/tenants/{name}", summary="Show a tenant")
async def get_tenant(
    name: str, request: Request, _: Principal = require(Permission.TENANTS_MANAGE)
) -> dict[str, Any]:
    """One tenant."""
    return (await runtime(request).tenants.get(name)).public()


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
    await rt.tenants.get(name)
    tenant = await rt.tenants.update(
        name, policy=body.policy, limits=body.limits, prices=body.prices, disabled=body.disabled
    )
    rt.authenticator.forget()
    record_admin(
        request, who, "tenants.update", name, **body.model_dump(mode="json", exclude_none=True)
    )
    return tenant.public()


@router.get("/keys", summary="List keys")
async def list_keys(
    request: Request,
    tenant: Annotated[str | None, Query(max_length=100)] = None,
    _: Principal = require(Permission.KEYS_MANAGE),
) -> dict[str, Any]:
    """Keys (ids, roles, state; never the keys)."""
    rt = runtime(request)
    names = {t.id: t.name for t in await rt.tenants.list_tenants()}
    tenant_id = (await rt.tenants.get(tenant)).id if tenant else None
    records = await rt.keys.list_keys(tenant_id)
    return {"data": [r.public(names.get(r.tenant_id)) for r in records]}


@router.post("/keys", status_code=201, summary="Create a key")
async def create_key(
    body: KeyCreate, request: Request, who: Principal = require(Permission.KEYS_MANAGE)
) -> dict[str, Any]:
    """Create a key; `key` in the answer is shown this once and never stored."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    tenant = await rt.tenants.get(body.tenant)
    record, key = await rt.keys.create(
        tenant, Role(body.role), name=body.name, expires_at=body.expires_at, limits=body.limits
    )
    record_admin(request, who, "keys.create", record.id, tenant=tenant.name, role=record.role.value)
    return {**record.public(tenant.name), "key": key}


@router.delete("/keys/{key_id}", summary="Revoke a key")
async def revoke_key(
    key_id: str, request: Request, who: Principal = require(Permission.KEYS_MANAGE)
) -> dict[str, Any]:
    """Revoke a key; every process refuses it within `auth_cache_s`."""
    rt = runtime(request)
    rt.audit.raise_if_closed()
    record = await rt.keys.revoke(key_id)
    rt.authenticator.forget()
    record_admin(request, who, "keys.revoke", record.id)
    return record.public()
