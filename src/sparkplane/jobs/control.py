"""What clients do to jobs after submitting them: queue and history views,
cancelling pending jobs, interrupting running ones, files, device-wide calls.

`tenant` arguments scope every operation: a tenant id, or None for callers who
may act on every tenant's jobs (JOBS_ALL). Jobs of other tenants behave as if
they did not exist (ComfyUI's `{}` or nothing happens).
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import structlog

from sparkplane.backends.workflow import WorkflowBackend, is_upload_input
from sparkplane.errors import UpstreamError
from sparkplane.jobs import shapes
from sparkplane.jobs.artifacts import TYPES, UnsafePath, clean_parts, split_output_subfolder
from sparkplane.jobs.records import Job, JobStatus
from sparkplane.jobs.service import ComfyService

log = structlog.get_logger("sparkplane.jobs")
DEVICE_CALL_S = 10.0
HISTORY = (JobStatus.SUCCESS, JobStatus.ERROR, JobStatus.INTERRUPTED)


async def queue_view(svc: ComfyService, tenant: str | None) -> dict[str, Any]:
    """GET /queue: running = executing on a device, pending = everything else unfinished."""
    running: list[list[Any]] = []
    pending: list[list[Any]] = []
    for job in await svc.store.unfinished(tenant):
        executing = job.status is JobStatus.RUNNING and job.executing_at is not None
        (running if executing else pending).append(job.queue_item())
    return {"queue_running": running, "queue_pending": pending}


async def prompt_info(svc: ComfyService, tenant: str) -> dict[str, Any]:
    """GET /prompt."""
    return {"exec_info": {"queue_remaining": await svc.store.remaining(tenant)}}


async def cancel(svc: ComfyService, job: Job) -> bool:
    """Cancel a job that has not started executing (also on the device that holds it)."""
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING) or job.executing_at is not None:
        return False
    if not await svc.store.cancel(job):
        return False
    if job.status is JobStatus.RUNNING and job.device and job.device_prompt_id:
        await _on_device(svc, job.device, "delete", [job.device_prompt_id])
    svc.cancelled(job)
    await svc.status_changed(job.tenant_id)
    return True


async def delete_pending(
    svc: ComfyService, tenant: str | None, prompt_ids: list[str] | None
) -> None:
    """POST /queue: delete these pending prompts, or all (clear); running ones stay."""
    if prompt_ids is None:
        jobs = await svc.store.unfinished(tenant)
    else:
        found = [await svc.store.get(str(p), tenant) for p in prompt_ids]
        jobs = [j for j in found if j is not None]
    for job in jobs:
        await cancel(svc, job)


async def interrupt(svc: ComfyService, tenant: str | None, prompt_id: str | None) -> None:
    """POST /interrupt: the named prompt if it is executing, else every executing prompt of
    the caller's tenant (never another tenant's)."""
    if prompt_id is not None:
        job = await svc.store.get(prompt_id, tenant)
        jobs = [job] if job is not None else []
    else:
        jobs = await svc.store.unfinished(tenant)
    for job in jobs:
        if job.status is JobStatus.RUNNING and job.executing_at is not None and job.device:
            await _on_device(svc, job.device, "interrupt", job.device_prompt_id)


async def _on_device(svc: ComfyService, name: str, call: str, arg: Any) -> None:
    device = svc.fleet.by_name(name)
    if device is None or not isinstance(device.backend, WorkflowBackend):
        return
    try:
        async with asyncio.timeout(DEVICE_CALL_S):
            await getattr(device.backend, call)(arg)
    except (UpstreamError, TimeoutError) as exc:
        log.warning("device_call_failed", action=f"jobs.{call}", device=name, why=str(exc)[:200])


async def history(
    svc: ComfyService, tenant: str | None, max_items: int | None, offset: int
) -> dict[str, Any]:
    """GET /history."""
    jobs = await svc.store.history(tenant, max_items, offset)
    return {job.prompt_id: shapes.history_entry(job) for job in jobs}


async def history_one(svc: ComfyService, tenant: str | None, prompt_id: str) -> dict[str, Any]:
    """GET /history/{prompt_id}: {} while unknown, unfinished, deleted or another tenant's."""
    job = await svc.store.get(prompt_id, tenant)
    if job is None or job.result is None or job.history_hidden or job.status not in HISTORY:
        return {}
    return {job.prompt_id: shapes.history_entry(job)}


async def view_path(
    svc: ComfyService, tenant: str | None, filename: str, type_: str, subfolder: str
) -> Path | int:
    """The file GET /view serves, or the status to answer (400 bad name, 404 missing)."""
    for suffix in ("[output]", "[input]", "[temp]"):
        if filename.endswith(" " + suffix):
            filename, type_ = filename[: -len(suffix) - 1], suffix[1:-1]
    if not filename or filename.startswith("/") or ".." in filename or type_ not in TYPES:
        return 400
    try:
        clean_parts(subfolder, filename)
    except UnsafePath:
        return 403
    if type_ == "input":
        upload = await svc.artifacts.find_upload(tenant, "input", subfolder, filename)
        path = svc.artifacts.absolute(upload.path) if upload is not None else None
    else:
        path = await _output(svc, tenant, filename, type_, subfolder)
    return path if path is not None and path.is_file() else 404


async def _output(
    svc: ComfyService, tenant: str | None, filename: str, type_: str, subfolder: str
) -> Path | None:
    parts = split_output_subfolder(subfolder)
    if parts is None:
        return None
    job = await svc.store.get_by_id(parts[0])
    if job is None or (tenant is not None and job.tenant_id != tenant) or job.attempts < 1:
        return None
    return svc.artifacts.output_path(job.tenant_id, job.id, job.attempts, type_, parts[1], filename)


def object_info(svc: ComfyService, devices: list[Any], uploads: list[str]) -> dict[str, Any]:
    """GET /object_info: every allowed device's classes, combo options unioned, with the
    caller's uploads as the choices of upload inputs (LoadImage)."""
    merged = svc.definitions(devices)
    for name, entry in list(merged.items()):
        inputs = entry.get("input") or {}
        for section in ("required", "optional"):
            for input_name, spec in (inputs.get(section) or {}).items():
                if is_upload_input(spec):
                    entry = merged[name] = copy.deepcopy(entry)
                    entry["input"][section][input_name][0] = list(uploads)
    return merged


def system_stats(svc: ComfyService, devices: list[Any]) -> dict[str, Any]:
    """GET /system_stats: the first device's `system`, one `devices` entry per device
    (named `<sparkplane device>: <its name>`)."""
    system: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    for device in devices:
        stats = device.backend.system_stats
        if not isinstance(stats, dict):
            continue
        system = system or dict(stats.get("system") or {})
        for entry in stats.get("devices") or []:
            entries.append({**entry, "name": f"{device.name}: {entry.get('name')}"})
    system.pop("argv", None)  # the devices' command lines are theirs, not the client's
    return {"system": system, "devices": entries}


async def free(svc: ComfyService, body: dict[str, Any]) -> None:
    """POST /free on every ComfyUI device."""
    await asyncio.gather(*(_on_device(svc, d.name, "free", body) for d in svc.devices()))
