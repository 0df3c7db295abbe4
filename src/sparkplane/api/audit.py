"""The audit API: `/api/audit` (the JSON twin of `sparkplane audit`), for auditors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from sparkplane.api.auth import require
from sparkplane.api.deps import runtime
from sparkplane.errors import NotFound
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Permission

router = APIRouter(prefix="/api/audit", tags=["audit"])


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@router.get("", summary="List audit entries")
async def list_entries(
    request: Request,
    since: Annotated[datetime | None, Query(description="Entries at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Entries before (ISO 8601).")] = None,
    tenant: Annotated[
        str | None, Query(max_length=100, description="A tenant's name or id.")
    ] = None,
    action: Annotated[
        str | None, Query(max_length=61, description="An action; `keys.*` for a prefix.")
    ] = None,
    after_seq: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="Entries after this seq.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    _: Principal = require(Permission.AUDIT_READ),
) -> dict[str, Any]:
    """Entries matching the filters, oldest first (newest last).

    With `after_seq` or `since`, the first `limit` entries from there; with
    neither, the newest `limit`. For the next page pass `next_after_seq` as
    `after_seq` (null when there is nothing more).
    """
    rt = runtime(request)
    tenant_id = None
    if tenant is not None:
        try:
            tenant_id = (await rt.tenants.get(tenant)).id
        except NotFound:
            tenant_id = tenant  # an id, or a tenant that no longer exists
    entries = await rt.audit.store.search(
        since=_utc(since),
        until=_utc(until),
        tenant_id=tenant_id,
        action=action,
        after_seq=after_seq,
        limit=limit,
    )
    more = len(entries) == limit and (after_seq is not None or since is not None)
    return {
        "data": [e.public() for e in entries],
        "next_after_seq": entries[-1].seq if more else None,
    }


@router.get("/verify", summary="Verify the audit chain")
async def verify_chain(
    request: Request, _: Principal = require(Permission.AUDIT_READ)
) -> dict[str, Any]:
    """Check every entry's hash and link; name the first broken entry and why."""
    report = await runtime(request).audit.verify()
    return report.public()
