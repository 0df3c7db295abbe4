"""The audit API: `/api/audit` (the JSON twin of `sparkplane audit`), for auditors.

A platform auditor or owner (`audit:all`) reads every entry and verifies the
fleet's chain. A tenant auditor (`audit:own`) reads only its own tenant's
entries, numbered and linked as that tenant's own chain, and verifies that
chain: it learns nothing of other tenants' entries, not even how many there
are. Naming another tenant answers 404, as for one that does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import StreamingResponse

from sparkplane.api.auth import require, tenant_in_reach
from sparkplane.api.deps import runtime
from sparkplane.errors import NotFound
from sparkplane.runtime import Runtime
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Permission

router = APIRouter(prefix="/api/audit", tags=["audit"])
TenantParam = Annotated[str | None, Query(max_length=100, description="A tenant's name or id.")]
Since = Annotated[datetime | None, Query(description="Entries at or after (ISO 8601).")]
Until = Annotated[datetime | None, Query(description="Entries before (ISO 8601).")]


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


async def _tenant_chain(rt: Runtime, who: Principal, tenant: str | None) -> str | None:
    """The tenant whose chain the caller reads: the named one or, for a caller without
    `audit:all`, always its own; None for the fleet's chain."""
    if tenant is not None:
        return (await tenant_in_reach(rt.tenants, who, tenant, Permission.AUDIT_ALL)).id
    return None if who.can(Permission.AUDIT_ALL) else who.tenant_id


@router.get("", summary="List audit entries")
async def list_entries(
    request: Request,
    since: Since = None,
    until: Until = None,
    tenant: TenantParam = None,
    action: Annotated[
        str | None, Query(max_length=61, description="An action; `keys.*` for a prefix.")
    ] = None,
    after_seq: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="Entries after this seq.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    who: Principal = require(Permission.AUDIT_OWN),
) -> dict[str, Any]:
    """Entries matching the filters, oldest first (newest last).

    With `after_seq` or `since`, the first `limit` entries from there; with
    neither, the newest `limit`. For the next page pass `next_after_seq` as
    `after_seq` (null when there is nothing more). A tenant auditor's entries
    carry its own chain's `seq`, `prev_hash` and `hash`.
    """
    rt = runtime(request)
    own_chain = not who.can(Permission.AUDIT_ALL)
    tenant_id = None
    if own_chain:
        tenant_id = await _tenant_chain(rt, who, tenant)
    elif tenant is not None:
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
        tenant_chain=own_chain,
    )
    shown = [e.tenant_public() if own_chain else e.public() for e in entries]
    more = len(entries) == limit and (after_seq is not None or since is not None)
    return {"data": shown, "next_after_seq": shown[-1]["seq"] if more else None}


@router.get("/verify", summary="Verify the audit chain")
async def verify_chain(
    request: Request,
    tenant: TenantParam = None,
    expect_head: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9a-fA-F]{64}$",
            description="A head hash kept elsewhere: the chain must still hold that entry.",
        ),
    ] = None,
    who: Principal = require(Permission.AUDIT_OWN),
) -> dict[str, Any]:
    """Check every entry's hash and link; name the first broken entry and why.

    The fleet's chain for `audit:all` without `tenant`; otherwise one tenant's
    own chain (a tenant auditor: always its own). With `expect_head`, a chain
    that no longer holds that entry (cut off or rewritten) fails too.
    """
    rt = runtime(request)
    tenant_id = await _tenant_chain(rt, who, tenant)
    report = await rt.audit.verify(tenant_id=tenant_id, expect_head=expect_head)
    return {**report.public(), "tenant_id": tenant_id}


@router.get(
    "/export",
    summary="Export audit entries as JSON Lines",
    response_class=StreamingResponse,
    responses={200: {"description": "One entry per line", "content": {"application/jsonl": {}}}},
)
async def export_entries(
    request: Request,
    since: Since = None,
    until: Until = None,
    tenant: TenantParam = None,
    who: Principal = require(Permission.AUDIT_OWN),
) -> StreamingResponse:
    """Entries with `since <= at < until`, oldest first, one JSON object a line.

    For one tenant (a tenant auditor: always its own) the lines are that
    tenant's own chain, which re-checks with the documented rule on its own.
    """
    rt = runtime(request)
    tenant_id = await _tenant_chain(rt, who, tenant)
    start = _utc(since) or datetime.min.replace(tzinfo=UTC)

    async def lines() -> AsyncIterator[bytes]:
        async for entry in rt.audit.export(start, _utc(until), tenant_id=tenant_id):
            yield orjson.dumps(entry) + b"\n"

    return StreamingResponse(lines(), media_type="application/jsonl")
