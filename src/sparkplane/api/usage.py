"""`/api/usage`: a month of metered usage and its cost (the JSON twin of
`sparkplane usage report`).

A caller with `usage:own` (every tenant role) sees only its own tenant: naming
another gives 404, as if it did not exist, so tenant names do not leak.
`usage:all` (platform owner and auditor) may name any tenant, or none for
every tenant.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from sparkplane.api.auth import require, tenant_in_reach
from sparkplane.api.deps import runtime
from sparkplane.db.engine import session_factory
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Permission
from sparkplane.security.tenancy import TenantRecord
from sparkplane.usage.formats import to_csv
from sparkplane.usage.report import month_report
from sparkplane.usage.store import current_month

router = APIRouter(prefix="/api/usage", tags=["usage"])

MonthParam = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{3}[1-9]-(0[1-9]|1[0-2])$", description="YYYY-MM (UTC)"),
]
TenantParam = Annotated[str | None, Query(max_length=100, description="Tenant name")]


@router.get(
    "",
    summary="Usage and cost for a month",
    response_model=None,
    responses={
        200: {
            "description": "The report: JSON, or CSV with `format=csv`",
            "content": {"application/json": {}, "text/csv": {}},
        }
    },
)
async def usage(
    request: Request,
    tenant: TenantParam = None,
    month: MonthParam = None,
    format: Literal["json", "csv"] = "json",
    principal: Principal = require(Permission.USAGE_OWN),
) -> dict[str, Any] | Response:
    """Requests, tokens, images, device-seconds, energy and cost by model and device."""
    rt = runtime(request)
    record: TenantRecord | None = None
    if tenant is not None:
        record = await tenant_in_reach(rt.tenants, principal, tenant, Permission.USAGE_ALL)
    elif not principal.can(Permission.USAGE_ALL):
        record = await rt.tenants.get_by_id(principal.tenant_id)
    report = await month_report(session_factory(rt.engine), month or current_month(), record)
    if format == "csv":
        return Response(to_csv(report), media_type="text/csv")
    return report.as_dict()
