"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from sparkplane.api.auth import principal_of
from sparkplane.api.deps import runtime
from sparkplane.errors import Forbidden
from sparkplane.security.principal import PUBLIC
from sparkplane.security.rbac import Permission

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness")
async def readyz(request: Request) -> Response:
    """Ready when not draining and the database answers."""
    rt = runtime(request)
    if rt.lifecycle.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    if not await rt.database_ok():
        return JSONResponse({"status": "database unreachable"}, status_code=503)
    return JSONResponse({"status": "ready", "devices": len(rt.fleet)})


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition (keyless when `metrics_public`, else metrics:read)."""
    principal = principal_of(request.scope)
    if principal is not PUBLIC and not principal.can(Permission.METRICS_READ):
        raise Forbidden(f"the {principal.role.value} role may not read metrics")
    return Response(
        runtime(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
