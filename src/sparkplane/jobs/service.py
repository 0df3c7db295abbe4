"""The ComfyUI job service of one process: wires the store, the artifact store, the
client hub, the worker and placement, and answers `POST /prompt`.

Placement (which job, which device) is the scheduler's: `scheduler/workflows.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from sparkplane.config import Settings
from sparkplane.db.models import utcnow
from sparkplane.errors import Unavailable, UpstreamError
from sparkplane.fleet.device import Device
from sparkplane.fleet.registry import Fleet
from sparkplane.jobs import validation, watch
from sparkplane.jobs.artifacts import ArtifactStore
from sparkplane.jobs.events import JobEvents, JobFinished
from sparkplane.jobs.hub import Hub, text
from sparkplane.jobs.records import Job, NewJob
from sparkplane.jobs.runner import RunContext
from sparkplane.jobs.store import JobStore
from sparkplane.jobs.worker import Worker
from sparkplane.scheduler import placement
from sparkplane.scheduler.placement import DeviceView
from sparkplane.scheduler.policy import Policy
from sparkplane.scheduler.workflows import WorkflowPlacer, backend_of
from sparkplane.security.principal import Principal

log = structlog.get_logger("sparkplane.jobs")

# ComfyUI keeps these in extra_data for API nodes but never shows them back.
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
# A prompt no device can run makes us re-read devices' /object_info at most this often.
REFRESH_ON_MISS_S = 30.0
# How long a submission may wait for a device's capabilities (first start).
CAPABILITY_WAIT_S = 10.0

Answer = tuple[int, dict[str, Any]]


class ComfyService:
    """See the module docstring."""

    def __init__(
        self, settings: Settings, fleet: Fleet, store: JobStore, artifacts: ArtifactStore
    ) -> None:
        self.settings = settings
        self.fleet = fleet
        self.store = store
        self.artifacts = artifacts
        self.hub = Hub()
        self.events = JobEvents()
        self.deny = frozenset(settings.comfy_deny_nodes)
        self.placer = WorkflowPlacer(fleet, settings.comfy_device_queue)
        self._refreshed_on_miss = 0.0
        # Jobs submitted here for a websocket client: if another process runs one, its
        # end is announced to the client from here (see `_watch`).
        self._watched: dict[str, Job] = {}
        self._watcher: asyncio.Task[None] | None = None
        ctx = RunContext(
            store=store,
            artifacts=artifacts,
            hub=self.hub,
            job_timeout_s=settings.comfy_job_timeout_s,
            max_attempts=settings.comfy_max_attempts,
            upload_file=self._upload_file,
            status_changed=self.status_changed,
            finished=self._finished,
            observe=self.placer.observe,
            gave_up=self.placer.gave_up,
            started=self._started,
        )
        self.worker = Worker(
            store,
            artifacts,
            ctx,
            self.placer.choose,
            fleet.by_name,
            self.placer.has_room,
            slots=settings.comfy_workers,
            lease_s=settings.job_lease_s,
            poll_s=settings.comfy_poll_s,
            retention_days=settings.artifact_retention_days,
        )

    def start(self) -> None:
        """Start the worker and the watch on jobs other processes run."""
        self.worker.start()
        self._watcher = asyncio.create_task(
            watch.run(self.store, self.hub, self._watched, self.status_changed, self.settings),
            name="jobs.watch",
        )

    async def stop(self) -> None:
        """Stop the worker and the client sockets' writers."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.worker.stop()
        await self.hub.close()
        await self.events.drain()

    # -- devices and capabilities ------------------------------------------------

    def devices(self, policy: Policy | None = None) -> list[Device]:
        """Workflow devices (ComfyUI), only those `policy` allows when given."""
        return self.placer.devices(policy)

    async def ensure_capabilities(self, devices: Sequence[Device], force: bool = False) -> None:
        """Read /object_info of devices that have none yet (or all, when `force`)."""
        todo = [d for d in devices if d.available and (force or backend_of(d).capabilities is None)]
        if not todo:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CAPABILITY_WAIT_S):
                results = await asyncio.gather(
                    *(backend_of(d).refresh_capabilities() for d in todo), return_exceptions=True
                )
                for result in results:
                    if isinstance(result, BaseException) and not isinstance(result, UpstreamError):
                        raise result

    def definitions(self, devices: Sequence[Device]) -> dict[str, dict[str, Any]]:
        """One /object_info over `devices`, without the denied node classes."""
        caps = [c for c in (backend_of(d).capabilities for d in devices) if c is not None]
        merged = placement.merged(caps)
        for name in self.deny:
            merged.pop(name, None)
        return merged

    # -- submission --------------------------------------------------------------

    async def submit(
        self,
        principal: Principal,
        policy: Policy,
        body: dict[str, Any],
        idempotency_key: str | None,
    ) -> Answer:
        """`POST /prompt`: validate, check some device can run it, store it, answer."""
        if "prompt" not in body:
            return 400, validation.no_prompt().body()
        prompt = body["prompt"]
        if isinstance(prompt, dict):
            refused = validation.denied(prompt, self.deny)
            if refused is not None:
                return 400, refused.body()
        devices = self.devices(policy)
        await self.ensure_capabilities(devices)
        known = [d for d in devices if backend_of(d).capabilities is not None]
        if not known and prompt:
            raise Unavailable(
                "no ComfyUI device is known yet: register one with `sparkplane devices add`",
                code="no_workflow_device",
            )
        checked = copy.deepcopy(prompt)
        uploads = await self.artifacts.upload_names(principal.tenant_id)
        targets = body.get("partial_execution_targets")
        verdict = validation.validate(checked, self.definitions(known), uploads, targets)
        if not verdict.ok:
            return 400, verdict.body()
        signature = placement.signature(checked)
        views = self.placer.views(known, signature)
        if not placement.capable(checked, views):
            if time.monotonic() - self._refreshed_on_miss > REFRESH_ON_MISS_S:
                # Perhaps a model was just installed: look again once in a while.
                self._refreshed_on_miss = time.monotonic()
                await self.ensure_capabilities(known, force=True)
                views = self.placer.views(known, signature)
            if not placement.capable(checked, views):
                return 400, _no_device(checked, views)
        return await self._store(
            principal, policy, body, checked, verdict, signature, idempotency_key
        )

    async def _store(
        self,
        principal: Principal,
        policy: Policy,
        body: dict[str, Any],
        prompt: dict[str, Any],
        verdict: validation.Verdict,
        signature: str,
        idempotency_key: str | None,
    ) -> Answer:
        extra = body.get("extra_data")
        extra = dict(extra) if isinstance(extra, dict) else {}
        secrets = {k: extra.pop(k) for k in SENSITIVE_EXTRA_DATA_KEYS if k in extra}
        client_id = body.get("client_id")
        if client_id is not None:
            client_id = str(client_id)
            extra["client_id"] = client_id
        prompt_id = str(body["prompt_id"]) if body.get("prompt_id") else str(uuid.uuid4())
        number = body.get("number")
        new = NewJob(
            prompt_id=prompt_id,
            tenant_id=principal.tenant_id,
            key_id=principal.key_id,
            prompt=prompt,
            extra_data=extra,
            outputs=verdict.outputs,
            node_errors=verdict.node_errors,
            signature=signature,
            client_id=client_id,
            idempotency_key=idempotency_key,
            policy={
                "allow_off_prem": policy.allow_off_prem,
                "allowed_devices": sorted(policy.allowed_devices)
                if policy.allowed_devices is not None
                else None,
            },
            number=float(number) if isinstance(number, int | float) else None,
            front=bool(body.get("front")),
            secrets=secrets,
        )
        job, created = await self.store.enqueue(new)
        if not created:
            same = (idempotency_key is not None and job.idempotency_key == idempotency_key) or (
                job.prompt_id == prompt_id and job.prompt == prompt
            )
            if not same:
                message = f"prompt_id {prompt_id!r} is already used by another prompt"
                return 400, validation.invalid_prompt(message, "").body()
        else:
            if job.client_id is not None:
                self._watched[job.id] = job
            await self.status_changed(job.tenant_id)
            self.worker.wake()
        # ComfyUI answers float(number) when the client gave one, its int counter otherwise.
        number_out = job.number if "number" in body else job.number_value
        return 200, {
            "prompt_id": job.prompt_id,
            "number": number_out,
            "node_errors": job.node_errors,
        }

    # -- the worker's hooks --------------------------------------------------------

    def _started(self, job: Job) -> None:
        self._watched.pop(job.id, None)  # this process relays it live

    async def status_changed(self, tenant_id: str) -> None:
        """Send `status` (the tenant's queue_remaining) to the tenant's sockets."""
        if not self.hub.connected(tenant_id):
            return
        remaining = await self.store.remaining(tenant_id)
        self.hub.broadcast(tenant_id, text("status", status_body(remaining)))

    async def _upload_file(self, job: Job, value: str) -> tuple[Path, str] | None:
        subfolder, _, name = value.rpartition("/")
        upload = await self.artifacts.find_upload(job.tenant_id, "input", subfolder, name)
        if upload is None:
            return None
        return self.artifacts.absolute(upload.path), upload.sha256

    def _finished(self, job: Job, status: str, device_seconds: float, files: int) -> None:
        self.placer.forget(job)
        now = utcnow()
        started = job.started_at or job.created_at
        self.events.emit(
            JobFinished(
                job_id=job.id,
                prompt_id=job.prompt_id,
                tenant_id=job.tenant_id,
                key_id=job.key_id,
                device=job.device,
                status=status,
                images=files,
                started_at=job.started_at,
                ended_at=now,
                duration_s=(now - job.created_at).total_seconds(),
                device_seconds=device_seconds,
                attempts=job.attempts,
            )
        )
        log.info(
            "job_finished", action="jobs.finished", job=job.id, status=status, device=job.device,
            attempts=job.attempts, seconds=round((now - started).total_seconds(), 3),
        )  # fmt: skip

    def cancelled(self, job: Job) -> None:
        """Report a job cancelled before it ran (from the API or CLI)."""
        self.worker.drop(job.id)
        self._finished(job, "cancelled", 0.0, 0)


def status_body(remaining: int) -> dict[str, Any]:
    """ComfyUI's `status` data."""
    return {"status": {"exec_info": {"queue_remaining": remaining}}}


def _no_device(prompt: dict[str, Any], views: Sequence[DeviceView]) -> dict[str, Any]:
    """ComfyUI's 400 shape, naming what the closest device lacks."""
    gap = placement.closest_gap(prompt, views)
    node_errors: dict[str, Any] = {}
    for item in gap:
        entry = node_errors.setdefault(
            item.node_id, {"errors": [], "dependent_outputs": [], "class_type": item.class_type}
        )
        entry["errors"].append(
            validation.error(
                "no_device_has_everything",
                "No single device has every node class and file this prompt needs",
                f"no device that has the rest also has {item.describe()}",
                input_name=item.input_name,
                received_value=item.value,
            )
        )
    details = "; ".join(i.describe() for i in gap)
    error = validation.error(
        "prompt_outputs_failed_validation",
        "Prompt outputs failed validation",
        f"no device can run this prompt: missing {details}",
    )
    return {"error": error, "node_errors": node_errors}
