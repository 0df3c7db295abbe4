"""Roles and what each may do. One table; routes name the permission they need."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A key's role."""

    ADMIN = "admin"  # everything
    OPERATOR = "operator"  # devices, models, all jobs
    MEMBER = "member"  # inference, and its own tenant's jobs, artifacts and usage
    AUDITOR = "auditor"  # the audit log and usage
    PUBLIC = "public"  # no key, on a public path: nothing beyond it


class Permission(StrEnum):
    """Something a route needs."""

    INFERENCE = "inference"  # OpenAI endpoints, submitting ComfyUI workflows
    MODELS_READ = "models:read"
    DEVICES_READ = "devices:read"
    DEVICES_WRITE = "devices:write"
    JOBS_OWN = "jobs:own"  # the caller's tenant's jobs, history, artifacts
    JOBS_ALL = "jobs:all"  # every tenant's jobs
    USAGE_OWN = "usage:own"
    USAGE_ALL = "usage:all"
    AUDIT_READ = "audit:read"
    KEYS_MANAGE = "keys:manage"
    TENANTS_MANAGE = "tenants:manage"
    METRICS_READ = "metrics:read"
    PLAN = "plan"


_ALL = frozenset(Permission)
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: _ALL,
    Role.OPERATOR: frozenset(
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
    Role.MEMBER: frozenset(
        {
            Permission.INFERENCE,
            Permission.MODELS_READ,
            Permission.JOBS_OWN,
            Permission.USAGE_OWN,
            Permission.PLAN,
        }
    ),
    Role.AUDITOR: frozenset(
        {Permission.AUDIT_READ, Permission.USAGE_OWN, Permission.USAGE_ALL, Permission.METRICS_READ}
    ),
    Role.PUBLIC: frozenset(),
}
# Roles a key can be given (PUBLIC is only for keyless calls to public paths).
KEY_ROLES = (Role.ADMIN, Role.OPERATOR, Role.MEMBER, Role.AUDITOR)


def allows(role: Role, permission: Permission) -> bool:
    """Whether `role` carries `permission`."""
    return permission in ROLE_PERMISSIONS[role]
