"""The first tenant and platform owner key, created once on an empty database."""

from __future__ import annotations

from sparkplane.errors import Conflict
from sparkplane.security.rbac import Role, Scope
from sparkplane.security.store import KeyStore, TenantStore
from sparkplane.security.tenancy import KeyRecord, TenantRecord

DEFAULT_TENANT = "default"


async def first_admin(
    tenants: TenantStore, keys: KeyStore, tenant_name: str = DEFAULT_TENANT
) -> tuple[TenantRecord, KeyRecord, str] | None:
    """Create the first tenant and a platform owner key if no tenant exists yet.

    Returns (tenant, key record, the key to show once), or None when the
    database already has tenants (also when another replica won the race).
    """
    if await tenants.count() > 0:
        return None
    try:
        tenant = await tenants.create(tenant_name)
    except Conflict:
        return None
    record, key = await keys.create(tenant, Role.OWNER, scope=Scope.PLATFORM, name="first owner")
    return tenant, record, key
