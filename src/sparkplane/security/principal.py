"""Who is calling: the authenticated key, its tenant, and that tenant's policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from sparkplane.security.rbac import Grant, Permission, Role, Scope, allows
from sparkplane.security.tenancy import Limits, TenantPolicy


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    `tenant_id` is the key's own tenant: where its inference is accounted and,
    for a tenant-scoped key, the only tenant it can see. A platform-scoped key
    lives in a tenant too (usually the provider's own) but reaches every tenant
    through its platform permissions.
    """

    key_id: str
    tenant_id: str
    tenant: str
    role: Role
    policy: TenantPolicy = field(default_factory=TenantPolicy)
    key_limits: Limits = field(default_factory=Limits)
    tenant_limits: Limits = field(default_factory=Limits)
    scope: Scope = Scope.TENANT

    @property
    def grant(self) -> Grant:
        """The caller's role in its scope."""
        return Grant(self.scope, self.role)

    def can(self, permission: Permission) -> bool:
        """Whether this caller's role carries `permission`."""
        return allows(self.scope, self.role, permission)

    def owns(self, tenant_id: str) -> bool:
        """Whether `tenant_id` is the caller's own tenant."""
        return bool(self.tenant_id) and tenant_id == self.tenant_id

    def may_use_model(self, model: str) -> bool:
        """Whether the tenant's model allow-list (if any) admits `model`."""
        allowed = self.policy.allowed_models
        return allowed is None or model in allowed


# The caller when authentication is off (loopback only): one implicit platform owner.
ANONYMOUS = Principal(key_id="", tenant_id="", tenant="", role=Role.OWNER, scope=Scope.PLATFORM)
# The caller of a public path (health probes, the API description): may do nothing else.
PUBLIC = Principal(key_id="", tenant_id="", tenant="", role=Role.PUBLIC)
