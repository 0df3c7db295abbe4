"""Tenants and keys for tests, made through the same stores the CLI uses."""

from __future__ import annotations

from dataclasses import dataclass

from sparkplane.runtime import Runtime
from sparkplane.security.rbac import LEGACY_GRANTS, Grant, Role
from sparkplane.security.tenancy import Limits, TenantPolicy, TenantRecord


@dataclass
class Keys:
    """One key per role (or per role in a scope) for a tenant."""

    tenant: TenantRecord
    by_role: dict[Role | Grant, str]

    def headers(self, role: Role | Grant) -> dict[str, str]:
        """Authorization headers for `role`'s key."""
        return {"Authorization": f"Bearer {self.by_role[role]}"}

    def key(self, role: Role | Grant) -> str:
        """The key made for `role`."""
        return self.by_role[role]


async def make_tenant(
    rt: Runtime,
    name: str,
    *,
    policy: TenantPolicy | None = None,
    limits: Limits | None = None,
    roles: tuple[Role | Grant, ...] = (Role.ADMIN, Role.OPERATOR, Role.MEMBER, Role.AUDITOR),
) -> Keys:
    """A tenant with one key per role in `roles`.

    A bare `Role` is made as migration 0005 maps a key of the single-scope model
    (`rbac.LEGACY_GRANTS`: admin -> platform owner, operator and auditor ->
    platform, member -> tenant member), so older tests keep their meaning; a
    `Grant` names the scope and role exactly.
    """
    tenant = await rt.tenants.create(name, policy=policy, limits=limits)
    keys: dict[Role | Grant, str] = {}
    for role in roles:
        grant = role if isinstance(role, Grant) else LEGACY_GRANTS[role]
        _, key = await rt.keys.create(
            tenant, grant.role, scope=grant.scope, name=f"{name}-{grant.scope}-{grant.role}"
        )
        keys[role] = key
    return Keys(tenant, keys)
