"""Announcing the end of jobs that another process ran.

A job's live frames go to websockets on the process that runs it. When a client's
socket is on the process that accepted its prompt and another process claimed
the job, this watch (every `comfy_poll_s`) tells the client how it ended: the
stored status messages, `executed` for each output, `status`, then `executing`
with node null, which is what ComfyUI's example flow waits for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

import structlog

from sparkplane.config import Settings
from sparkplane.jobs.hub import Hub, text
from sparkplane.jobs.queries import JobReads
from sparkplane.jobs.records import FINAL, Job, JobStatus

log = structlog.get_logger("sparkplane.jobs")
FINAL_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


async def run(
    store: JobReads,
    hub: Hub,
    watched: dict[str, Job],
    status_changed: Callable[[str], Awaitable[None]],
    settings: Settings,
) -> None:
    """Poll `watched` jobs (removed from it when this process runs them) until cancelled."""
    while True:
        await asyncio.sleep(settings.comfy_poll_s)
        for job_id in list(watched):
            try:
                job = await store.get_by_id(job_id)
            except Exception:  # noqa: BLE001 - the database may be away; try next round
                log.warning("watch_failed", action="jobs.watch", job=job_id)
                break
            if job is None or job.status is JobStatus.CANCELLED:
                watched.pop(job_id, None)
            elif job.status in FINAL and job_id in watched:
                watched.pop(job_id, None)
                await announce(hub, job, status_changed)


async def announce(hub: Hub, job: Job, status_changed: Callable[[str], Awaitable[None]]) -> None:
    """Send a finished job's end to its client, as the frames would have told it."""
    if job.client_id is None or job.result is None:
        return
    send = partial(hub.send, job.tenant_id, job.client_id)
    messages = (job.result.get("status") or {}).get("messages") or []
    for kind, data in messages:
        if kind not in FINAL_EVENTS:
            send(text(kind, data))
    for node, output in (job.result.get("outputs") or {}).items():
        executed = {"node": node, "display_node": node, "output": output}
        send(text("executed", {**executed, "prompt_id": job.prompt_id}))
    for kind, data in messages:
        if kind in FINAL_EVENTS:
            send(text(kind, data))
    await status_changed(job.tenant_id)
    send(text("executing", {"node": None, "prompt_id": job.prompt_id}))
