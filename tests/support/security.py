"""Tenants and keys for tests, made through the same stores the CLI uses."""

from __future__ import annotations

from dataclasses import dataclass

from sparkplane.runtime import Runtime
from sparkplane.security.rbac import Role
from sparkplane.security.tenancy import Limits, TenantPolicy, TenantRecord


@dataclass
class Keys:
    """One key per role for a tenant."""

    tenant: TenantRecord
    by_role: dict[Role, str]

    def headers(self, role: Role) -> dict[str, str]:
        """Authorization headers for `role`'s key."""
        return {"Authorization": f"Bearer {self.by_role[role]}"}


async def make_tenant(
    rt: Runtime,
    name: str,
    *,
    policy: TenantPolicy | None = None,
    limits: Limits | None = None,
    roles: tuple[Role, ...] = (Role.ADMIN, Role.OPERATOR, Role.MEMBER, Role.AUDITOR),
) -> Keys:
    """A tenant with one key per role in `roles`."""
    tenant = await rt.tenants.create(name, policy=policy, limits=limits)
    keys = {}
    for role in roles:
        _, key = await rt.keys.create(tenant, role, name=f"{name}-{role.value}")
        keys[role] = key
    return Keys(tenant, keys)
