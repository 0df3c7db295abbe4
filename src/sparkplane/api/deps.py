"""Access to the running process's parts from a request."""

from __future__ import annotations

from typing import Any, cast

from starlette.requests import HTTPConnection

from sparkplane.runtime import Runtime
from sparkplane.security.audit_events import AdminEvent
from sparkplane.security.principal import Principal


def runtime(request: HTTPConnection) -> Runtime:
    """The Runtime the app's lifespan put into the request state."""
    return cast(Runtime, request.state.runtime)


def record_admin(
    request: HTTPConnection, principal: Principal, action: str, target: str, **details: Any
) -> None:
    """Append an admin action to the audit log (refused first if the log is down)."""
    audit = runtime(request).audit
    audit.raise_if_closed()
    audit.record(
        AdminEvent(
            action=action,
            tenant_id=principal.tenant_id or None,
            key_id=principal.key_id or None,
            target=target,
            details={"via": "api", **details},
        )
    )
