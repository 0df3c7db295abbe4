"""The admin API for workflow jobs: `/api/jobs` (the JSON twin of `sparkplane jobs`).

`jobs:own` lists and acts on the caller's tenant's jobs; `jobs:all` (platform
owner and operator) on every tenant's (optionally filtered with `?tenant_id=`).
A job is named by its prompt_id or its sparkplane id; another tenant's job is
a 404, and so is naming another tenant in `?tenant_id=` without `jobs:all`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from sparkplane.api.auth import no_such_tenant, require
from sparkplane.api.deps import runtime
from sparkplane.errors import NotFound
from sparkplane.jobs import control
from sparkplane.jobs.records import Job, JobStatus
from sparkplane.jobs.service import ComfyService
from sparkplane.security.principal import Principal
from sparkplane.security.rbac import Permission

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
Status = Annotated[JobStatus | None, Query(description="Only jobs in this state.")]


def _scope(principal: Principal) -> str | None:
    return None if principal.can(Permission.JOBS_ALL) else principal.tenant_id


async def find_job(svc: ComfyService, tenant: str | None, name: str) -> Job:
    """A job by prompt_id or id, within `tenant` (any when None); NotFound otherwise."""
    job = await svc.store.get(name, tenant)
    if job is None:
        job = await svc.store.get_by_id(name)
        if job is not None and tenant is not None and job.tenant_id != tenant:
            job = None
    if job is None:
        raise NotFound(f"no job {name!r}", code="job_not_found")
    return job


@router.get("", summary="List jobs")
async def list_jobs(
    request: Request,
    status: Status = None,
    tenant_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    principal: Principal = require(Permission.JOBS_OWN),
) -> dict[str, Any]:
    """Jobs, newest first."""
    tenant = _scope(principal)
    if tenant is None and tenant_id is not None:
        tenant = tenant_id
    elif tenant_id is not None and tenant_id != tenant:
        raise no_such_tenant(tenant_id)
    jobs = await runtime(request).comfy.store.list_jobs(
        tenant, status.value if status else None, limit
    )
    return {"data": [j.public() for j in jobs]}


@router.get("/{job}", summary="Show a job")
async def get_job(
    job: str, request: Request, principal: Principal = require(Permission.JOBS_OWN)
) -> dict[str, Any]:
    """One job with its attempts (device, times, outcome)."""
    svc = runtime(request).comfy
    found = await find_job(svc, _scope(principal), job)
    attempts = await svc.store.attempts(found.id)
    return {**found.public(), "attempts": [a.public() for a in attempts]}


@router.delete("/{job}", summary="Cancel a job")
async def cancel_job(
    job: str, request: Request, principal: Principal = require(Permission.JOBS_OWN)
) -> dict[str, Any]:
    """Cancel a pending job; interrupt one that is executing."""
    svc = runtime(request).comfy
    found = await find_job(svc, _scope(principal), job)
    if not await control.cancel(svc, found):
        await control.interrupt(svc, found.tenant_id, found.prompt_id)
    after = await svc.store.get_by_id(found.id)
    assert after is not None
    return after.public()
