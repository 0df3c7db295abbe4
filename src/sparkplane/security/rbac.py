"""Roles and what each may do. One table; routes name the permission they need.

A key holds one role in one of two scopes:

- **platform** roles belong to the service provider and reach every tenant:
  `owner` (everything), `operator` (devices, models, every tenant's jobs),
  `auditor` (every tenant's audit log and usage);
- **tenant** roles belong to one client organisation and reach only it:
  `admin` (its keys and their limits), `member` (inference, its jobs and
  usage), `auditor` (its audit log and usage).

Every permission has a scope too. A platform permission (devices, tenants,
metrics, the fleet's audit chain, `*:all`) is held by platform roles only,
so a tenant key can never reach past its tenant; a tenant permission acts on
the caller's own tenant, and a platform role that also holds the matching
`*:all` permission may name any tenant.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Scope(StrEnum):
    """How far a role reaches."""

    PLATFORM = "platform"  # every tenant: the service provider's staff
    TENANT = "tenant"  # one tenant: a client organisation's own people


class Role(StrEnum):
    """A key's role (its meaning depends on its scope, see `GRANTS`)."""

    OWNER = "owner"  # platform: everything
    OPERATOR = "operator"  # platform: devices, models, every tenant's jobs
    ADMIN = "admin"  # tenant: its own keys, their limits, its usage
    MEMBER = "member"  # tenant: inference, its own jobs, artifacts and usage
    AUDITOR = "auditor"  # either scope: the audit log and usage (of one or every tenant)
    PUBLIC = "public"  # no key, on a public path: nothing beyond it


class Permission(StrEnum):
    """Something a route needs."""

    INFERENCE = "inference"  # OpenAI endpoints, submitting ComfyUI workflows
    MODELS_READ = "models:read"
    PLAN = "plan"
    JOBS_OWN = "jobs:own"  # the caller's tenant's jobs, history, artifacts
    USAGE_OWN = "usage:own"  # the caller's tenant's usage
    AUDIT_OWN = "audit:own"  # the caller's tenant's audit entries and chain
    KEYS_OWN = "keys:own"  # the caller's tenant's tenant-scoped keys and their limits
    TENANT_READ = "tenant:read"  # the caller's tenant's record (policy, limits, prices)
    # Platform permissions: held by platform roles only.
    JOBS_ALL = "jobs:all"  # every tenant's jobs
    USAGE_ALL = "usage:all"
    AUDIT_ALL = "audit:all"  # every entry, and the fleet's chain
    KEYS_ALL = "keys:all"  # any tenant's keys, platform keys included
    TENANTS_MANAGE = "tenants:manage"
    DEVICES_READ = "devices:read"
    DEVICES_WRITE = "devices:write"
    METRICS_READ = "metrics:read"


PLATFORM_PERMISSIONS = frozenset(
    {
        Permission.JOBS_ALL,
        Permission.USAGE_ALL,
        Permission.AUDIT_ALL,
        Permission.KEYS_ALL,
        Permission.TENANTS_MANAGE,
        Permission.DEVICES_READ,
        Permission.DEVICES_WRITE,
        Permission.METRICS_READ,
    }
)


def scope_of(permission: Permission) -> Scope:
    """Whether `permission` reaches every tenant (platform) or the caller's own (tenant)."""
    return Scope.PLATFORM if permission in PLATFORM_PERMISSIONS else Scope.TENANT


class Grant(NamedTuple):
    """A role in a scope: what a key holds."""

    scope: Scope
    role: Role

    def __str__(self) -> str:
        return f"{self.scope.value} {self.role.value}"


PLATFORM_OWNER = Grant(Scope.PLATFORM, Role.OWNER)
PLATFORM_OPERATOR = Grant(Scope.PLATFORM, Role.OPERATOR)
PLATFORM_AUDITOR = Grant(Scope.PLATFORM, Role.AUDITOR)
TENANT_ADMIN = Grant(Scope.TENANT, Role.ADMIN)
TENANT_MEMBER = Grant(Scope.TENANT, Role.MEMBER)
TENANT_AUDITOR = Grant(Scope.TENANT, Role.AUDITOR)

GRANTS: dict[Grant, frozenset[Permission]] = {
    PLATFORM_OWNER: frozenset(Permission),
    PLATFORM_OPERATOR: frozenset(
        {
            Permission.MODELS_READ,
            Permission.DEVICES_READ,
            Permission.DEVICES_WRITE,
            Permission.JOBS_OWN,
            Permission.JOBS_ALL,
            Permission.METRICS_READ,
            Permission.PLAN,
        }
    ),
    PLATFORM_AUDITOR: frozenset(
        {
            Permission.AUDIT_OWN,
            Permission.AUDIT_ALL,
            Permission.USAGE_OWN,
            Permission.USAGE_ALL,
            Permission.METRICS_READ,
        }
    ),
    TENANT_ADMIN: frozenset(
        {
            Permission.KEYS_OWN,
            Permission.TENANT_READ,
            Permission.USAGE_OWN,
            Permission.INFERENCE,
            Permission.MODELS_READ,
            Permission.JOBS_OWN,
            Permission.PLAN,
        }
    ),
    TENANT_MEMBER: frozenset(
        {
            Permission.INFERENCE,
            Permission.MODELS_READ,
            Permission.JOBS_OWN,
            Permission.USAGE_OWN,
            Permission.PLAN,
        }
    ),
    TENANT_AUDITOR: frozenset({Permission.AUDIT_OWN, Permission.USAGE_OWN}),
}
# Roles a key can be given in each scope (PUBLIC is only for keyless calls to public paths).
KEY_GRANTS = tuple(GRANTS)
SCOPE_ROLES: dict[Scope, tuple[Role, ...]] = {
    scope: tuple(g.role for g in KEY_GRANTS if g.scope is scope) for scope in Scope
}
# What each role of the single-scope model (before migration 0005) became.
LEGACY_GRANTS: dict[Role, Grant] = {
    Role.ADMIN: PLATFORM_OWNER,
    Role.OPERATOR: PLATFORM_OPERATOR,
    Role.AUDITOR: PLATFORM_AUDITOR,
    Role.MEMBER: TENANT_MEMBER,
}


def permissions(scope: Scope, role: Role) -> frozenset[Permission]:
    """What `role` in `scope` may do (nothing for a role the scope does not have)."""
    return GRANTS.get(Grant(scope, role), frozenset())


def allows(scope: Scope, role: Role, permission: Permission) -> bool:
    """Whether `role` in `scope` carries `permission`."""
    return permission in permissions(scope, role)


def valid_grant(scope: Scope, role: Role) -> bool:
    """Whether a key may hold `role` in `scope`."""
    return Grant(scope, role) in GRANTS


def default_scope(role: Role) -> Scope:
    """The scope a role means when none is named: `owner` and `operator` exist only on the
    platform; `admin`, `member` and `auditor` are tenant roles unless a platform scope is
    asked for."""
    return Scope.PLATFORM if role in (Role.OWNER, Role.OPERATOR) else Scope.TENANT
