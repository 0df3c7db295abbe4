"""Tenants and keys as plain records, and the settings a tenant carries:
policy (data residency), limits and prices. Validated with pydantic because
they arrive from the CLI and the admin API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from sparkplane.security.rbac import Grant, Role, Scope

# Bounded to what a 64-bit column and a finite JSON number hold, so a value no
# database would take is refused here, naming its field.
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
Money = Annotated[float, Field(ge=0, le=1e15, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Limits(_Frozen):
    """Limits for a key or a tenant; None means no limit."""

    requests_per_minute: Count | None = None
    tokens_per_minute: Count | None = None
    concurrent: Count | None = None
    monthly_tokens: Count | None = None
    monthly_images: Count | None = None

    def over(self, ceiling: Limits) -> str | None:
        """The first limit set higher than (or left unset under) `ceiling`'s, or None.

        A tenant's limits are the ceiling for its keys: a key limit above the
        tenant's would never apply, so it is refused rather than silently moot.
        """
        for name in type(self).model_fields:
            cap, mine = getattr(ceiling, name), getattr(self, name)
            if cap is not None and mine is not None and mine > cap:
                return name
        return None


class TenantPolicy(_Frozen):
    """Where a tenant's work may run and what it may use."""

    allow_off_prem: bool = False
    allowed_devices: frozenset[str] | None = None
    allowed_models: frozenset[str] | None = None
    # Prompts and images stay out of the audit log unless the tenant opts in.
    audit_content: bool = False


class Prices(_Frozen):
    """What a tenant pays; turns metered usage into cost."""

    currency: Annotated[str, Field(min_length=1, max_length=8)] = "USD"
    per_1k_input_tokens: Money = 0.0
    per_1k_output_tokens: Money = 0.0
    per_image: Money = 0.0
    per_device_hour: Money = 0.0


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """A tenant as stored."""

    id: str
    name: str
    created_at: datetime
    disabled: bool
    policy: TenantPolicy
    limits: Limits
    prices: Prices

    def settings(self) -> dict[str, Any]:
        """Its policy, limits and prices as JSON-ready dicts (for audit entries)."""
        return {
            "policy": self.policy.model_dump(mode="json"),
            "limits": self.limits.model_dump(mode="json"),
            "prices": self.prices.model_dump(mode="json"),
        }

    def public(self) -> dict[str, Any]:
        """The tenant as the API and CLI show it."""
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "disabled": self.disabled,
            **self.settings(),
        }


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as stored: never the key itself."""

    id: str
    tenant_id: str
    name: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    limits: Limits
    scope: Scope = Scope.TENANT
    last_used_at: datetime | None = None  # at most a usage flush interval behind
    previous_until: datetime | None = None  # a rotation's old secret works until then

    @property
    def grant(self) -> Grant:
        """The key's role in its scope."""
        return Grant(self.scope, self.role)

    def usable(self, now: datetime) -> bool:
        """Not revoked and not expired."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def public(self, tenant: str | None = None) -> dict[str, Any]:
        """The key as listings show it (the id, never the secret)."""
        return {
            "id": self.id,
            "prefix": f"sp-{self.id}_",
            "tenant_id": self.tenant_id,
            "tenant": tenant,
            "name": self.name,
            "scope": self.scope.value,
            "role": self.role.value,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "limits": self.limits.model_dump(mode="json"),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "previous_secret_until": (
                self.previous_until.isoformat() if self.previous_until else None
            ),
        }
