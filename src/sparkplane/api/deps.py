"""Access to the running process's parts from a request."""

from __future__ import annotations

from typing import Any, cast

from starlette.requests import HTTPConnection

from sparkplane.runtime import Runtime
from sparkplane.security.audit_events import AdminEvent
from sparkplane.security.principal import Principal
from sparkplane.security.tenancy import TenantRecord


def runtime(request: HTTPConnection) -> Runtime:
    """The Runtime the app's lifespan put into the request state."""
    return cast(Runtime, request.state.runtime)


def record_admin(
    request: HTTPConnection,
    principal: Principal,
    action: str,
    target: str,
    tenant: TenantRecord | None = None,
    **details: Any,
) -> None:
    """Append an admin action to the audit log (refused first if the log is down),
    in the chain of `tenant` when it concerns one, else of the actor's tenant."""
    audit = runtime(request).audit
    audit.raise_if_closed()
    if tenant is not None:
        details = {"tenant": tenant.name, **details}
    audit.record(
        AdminEvent(
            action=action,
            tenant_id=tenant.id if tenant is not None else principal.tenant_id or None,
            key_id=principal.key_id or None,
            target=target,
            details={"via": "api", **details},
            actor_tenant_id=(principal.tenant_id or None) if tenant is not None else None,
        )
    )
