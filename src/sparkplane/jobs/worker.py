"""The job worker of one process: claims jobs, runs them, keeps their leases.

Loops (all cancelled at shutdown):
- dispatch: while fewer than `comfy_workers` attempts run, claim the first queued
  job that some device can take now (placement picks the device) and start it;
  when nothing can be claimed, wait for a wake-up (a local submission, an attempt
  ending) or `comfy_poll_s` (jobs submitted to other processes);
- leases: every lease/3 renew this worker's leases; an attempt whose job is no
  longer ours (cancelled, or requeued after our lease ran out) is told to stop;
- reaper: requeue jobs whose lease expired (their process died: kill -9);
- retention: remove outputs, history and uploads older than the retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta

import structlog

from sparkplane.db.models import utcnow
from sparkplane.fleet.device import Device
from sparkplane.jobs.artifacts import ArtifactStore
from sparkplane.jobs.records import Claim, Job
from sparkplane.jobs.runner import AttemptRun, RunContext
from sparkplane.jobs.store import Choice, JobStore

log = structlog.get_logger("sparkplane.jobs")

Placer = Callable[[Sequence[Job]], Choice | None]
RETENTION_EVERY_S = 3600.0


def worker_id() -> str:
    """A name for this process's leases: host, pid and a random tail."""
    return f"{socket.gethostname()[:60]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims and runs jobs; see the module docstring."""

    def __init__(
        self,
        store: JobStore,
        artifacts: ArtifactStore,
        ctx: RunContext,
        place: Placer,
        device: Callable[[str], Device | None],
        has_room: Callable[[], bool],
        *,
        slots: int,
        lease_s: float,
        poll_s: float,
        retention_days: float,
    ) -> None:
        self.id = worker_id()
        self._store = store
        self._artifacts = artifacts
        self._ctx = ctx
        self._place = place
        self._device = device
        self._has_room = has_room
        self._slots = slots
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._retention_days = retention_days
        self._wake = asyncio.Event()
        self._running: dict[tuple[str, int], tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the loops."""
        self._tasks = [
            asyncio.create_task(self._guard(self._dispatch), name="jobs.dispatch"),
            asyncio.create_task(self._guard(self._leases), name="jobs.leases"),
            asyncio.create_task(self._guard(self._reaper), name="jobs.reaper"),
            asyncio.create_task(self._guard(self._retention), name="jobs.retention"),
        ]

    async def stop(self) -> None:
        """Stop the loops and the attempts (their jobs are released for the next claim)."""
        tasks = self._tasks + [t for t, _ in self._running.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def drop(self, job_id: str) -> None:
        """Tell a local attempt of this job to stop (the job was cancelled)."""
        for (running_id, _), (_, lost) in self._running.items():
            if running_id == job_id:
                lost.set()

    def wake(self) -> None:
        """Something may be claimable now."""
        self._wake.set()

    @property
    def busy(self) -> int:
        """Attempts running in this process."""
        return len(self._running)

    async def _guard(self, loop: Callable[[], object]) -> None:
        while True:
            try:
                await loop()  # type: ignore[misc]
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker_loop_failed", action="jobs.worker")
                await asyncio.sleep(1.0)

    async def _dispatch(self) -> None:
        while True:
            claim = None
            self._wake.clear()
            # Ask the database only when an attempt could start: a slot here and room on
            # some device (the wake-up comes when either frees).
            if len(self._running) < self._slots and self._has_room():
                claim = await self._store.claim(self.id, self._place, self._lease_s, limit=8)
            if claim is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)
                continue
            self._start(claim)

    def _start(self, claim: Claim) -> None:
        device = self._device(claim.device)
        lost = asyncio.Event()
        key = (claim.job.id, claim.token)
        if device is None:
            lost.set()
        task = asyncio.create_task(self._run(claim, device, lost), name=f"job-{claim.job.id}")
        self._running[key] = (task, lost)
        task.add_done_callback(lambda _: self._ended(key))

    async def _run(self, claim: Claim, device: Device | None, lost: asyncio.Event) -> None:
        if device is None:
            await self._store.requeue(
                claim.job.id,
                claim.token,
                "released",
                f"device '{claim.device}' is gone",
                max_attempts=self._ctx.max_attempts,
                failure=lambda d: {},
            )
            return
        device.inflight += 1
        try:
            await self._ctx.status_changed(claim.job.tenant_id)
            await AttemptRun(self._ctx, claim, device, lost).run()
        finally:
            device.inflight -= 1

    def _ended(self, key: tuple[str, int]) -> None:
        self._running.pop(key, None)
        self._wake.set()

    async def _leases(self) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            held = await self._store.renew(self.id, self._lease_s)
            for key, (_, lost) in list(self._running.items()):
                if key not in held:
                    lost.set()

    async def _reaper(self) -> None:
        while True:
            requeued = await self._store.reap()
            if requeued:
                log.info("leases_expired", action="jobs.reap", jobs=len(requeued))
                self._wake.set()
            await asyncio.sleep(max(self._lease_s / 2, 0.2))

    async def _retention(self) -> None:
        if self._retention_days <= 0:
            return
        while True:
            cutoff = utcnow() - timedelta(days=self._retention_days)
            jobs, uploads = await self._artifacts.sweep(cutoff)
            if jobs or uploads:
                log.info("retention_sweep", action="jobs.retention", jobs=jobs, uploads=uploads)
            await asyncio.sleep(RETENTION_EVERY_S)
