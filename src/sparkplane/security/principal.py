"""Who is calling: the authenticated key, its tenant, and that tenant's policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from sparkplane.security.rbac import Permission, Role, allows
from sparkplane.security.tenancy import Limits, TenantPolicy


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    key_id: str
    tenant_id: str
    tenant: str
    role: Role
    policy: TenantPolicy = field(default_factory=TenantPolicy)
    key_limits: Limits = field(default_factory=Limits)
    tenant_limits: Limits = field(default_factory=Limits)

    def can(self, permission: Permission) -> bool:
        """Whether this caller's role carries `permission`."""
        return allows(self.role, permission)

    def may_use_model(self, model: str) -> bool:
        """Whether the tenant's model allow-list (if any) admits `model`."""
        allowed = self.policy.allowed_models
        return allowed is None or model in allowed


# The caller when authentication is off (loopback only): one implicit admin.
ANONYMOUS = Principal(key_id="", tenant_id="", tenant="", role=Role.ADMIN)
# The caller of a public path (health probes, the API description): may do nothing else.
PUBLIC = Principal(key_id="", tenant_id="", tenant="", role=Role.PUBLIC)
