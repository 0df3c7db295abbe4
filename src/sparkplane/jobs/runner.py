"""One attempt of one job on one device: copy inputs, submit under our ids, relay
the device's frames to the client, copy outputs, record the outcome.

Failure handling (see docs/comfyui.md):
- the device cannot be reached, stops answering its queue, loses the prompt (a
  restart) or the attempt runs past `comfy_job_timeout_s`: the attempt is given
  up and the job goes back to the queue (`requeue`, bounded attempts);
- ComfyUI's own `execution_error` / `execution_interrupted`: final, relayed as sent;
- the job was taken from us (lease lost, cancelled): we stop, and anything the
  device still says is ignored; `complete` is fenced by the attempt number too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from sparkplane.backends.workflow import EventStream, Frame, WorkflowBackend
from sparkplane.errors import UpstreamError, UpstreamTimeout
from sparkplane.fleet.device import Device
from sparkplane.jobs import shapes, transfer
from sparkplane.jobs.artifacts import ArtifactStore
from sparkplane.jobs.hub import Hub, text
from sparkplane.jobs.records import Artifact, Claim, Job, JobStatus
from sparkplane.jobs.store import JobStore

log = structlog.get_logger("sparkplane.jobs")

SILENCE_CHECK_S = 2.0  # silence on the socket this long: ask the device about our prompt
CHECK_TIMEOUT_S = 5.0
MAX_STRIKES = 2  # failed checks in a row before the device counts as lost
_FINAL_EVENTS = ("execution_success", "execution_error", "execution_interrupted")
_TO_EVERYONE = ("progress", "progress_state")  # prompts without client_id: to all sockets


class Lost(Exception):
    """The attempt cannot finish on this device (the job goes back to the queue)."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


class Superseded(Exception):
    """The job is no longer ours (lease lost, cancelled, retried elsewhere)."""


@dataclass
class RunContext:
    """What an attempt needs from the service."""

    store: JobStore
    artifacts: ArtifactStore
    hub: Hub
    job_timeout_s: float
    max_attempts: int
    upload_file: Callable[[Job, str], Awaitable[tuple[Path, str] | None]]
    status_changed: Callable[[str], Awaitable[None]]
    finished: Callable[[Job, str, float, int], None]
    observe: Callable[[Device, str, float], None]
    gave_up: Callable[[Job, str], None]
    started: Callable[[Job], None]
    uploaded: dict[str, set[str]] = field(default_factory=dict)


class AttemptRun:
    """Runs one claim; `run()` never raises (outcomes go to the store)."""

    def __init__(self, ctx: RunContext, claim: Claim, device: Device, lost: asyncio.Event) -> None:
        self.ctx = ctx
        self.claim = claim
        self.job = claim.job
        self.device = device
        backend = device.backend
        assert isinstance(backend, WorkflowBackend)
        self.backend: WorkflowBackend = backend
        self.dpid = claim.device_prompt_id
        self.client = f"sparkplane-{self.dpid}"
        self.superseded = lost
        self.copied: dict[tuple[str, str, str], Artifact] = {}
        self.stream: EventStream | None = None
        self.exec_started: float | None = None

    # -- the attempt ---------------------------------------------------------------

    async def run(self) -> None:
        job, token = self.job, self.claim.token
        self.ctx.started(job)
        try:
            async with asyncio.timeout(self.ctx.job_timeout_s):
                entry = await self._execute()
            await self._finish(entry)
        except Superseded:
            await self._abandon("superseded")
        except _Refused as exc:
            await self._refused(exc.body)
        except Lost as exc:
            await self._give_up(exc.outcome, exc.detail)
        except TimeoutError:
            await self._interrupt_quietly()
            await self._give_up("timeout", f"no result within {self.ctx.job_timeout_s:g}s")
        except UpstreamError as exc:
            await self._give_up("lost", exc.message)
        except asyncio.CancelledError:
            # The process is stopping: leave the job to the next claim, which looks
            # for this attempt on the device before running it again.
            await asyncio.shield(
                self.ctx.store.requeue(
                    job.id,
                    token,
                    "released",
                    "sparkplane stopped",
                    max_attempts=self.ctx.max_attempts,
                    failure=lambda d: shapes.failure_result(job, d),
                    resume=True,
                )
            )
            raise

    async def _execute(self) -> dict[str, Any]:
        try:
            if self.claim.resume:
                where = await self._locate()
                if isinstance(where, dict):
                    return where  # it finished while nobody watched: adopt the result
                if where == "queued":
                    await self._open()
            if self.stream is None:
                prompt = await self._with_inputs(self.job.prompt)
                await self._open()
                await self._submit(prompt)
            return await self._relay()
        finally:
            if self.stream is not None:
                await self.stream.close()

    async def _open(self) -> EventStream:
        if self.stream is not None:
            await self.stream.close()
        meta = self.ctx.hub.preview_metadata(self.job.tenant_id, self.job.client_id)
        self.stream = await self.backend.events(self.client, meta)
        return self.stream

    async def _submit(self, prompt: dict[str, Any]) -> None:
        extra = {**self.job.extra_data, **self.job.secrets}
        extra.pop("client_id", None)
        status, body = await self.backend.submit(prompt, self.dpid, self.client, extra)
        if status == 400:
            raise _Refused(body)
        if status != 200:
            raise Lost("device_error", f"device answered POST /prompt with HTTP {status}")

    async def _with_inputs(self, prompt: dict[str, Any]) -> dict[str, Any]:
        """The prompt with uploaded files copied to the device and renamed there."""
        done = self.ctx.uploaded.setdefault(self.device.name, set())
        return await transfer.with_inputs(
            self.backend, prompt, lambda value: self.ctx.upload_file(self.job, value), done
        )

    async def _relay(self) -> dict[str, Any]:
        strikes = 0
        while True:
            if self.superseded.is_set():
                raise Superseded()
            assert self.stream is not None
            try:
                frame = await self.stream.receive(SILENCE_CHECK_S)
            except UpstreamError:
                where = await self._check(strikes=MAX_STRIKES - 1)
                if isinstance(where, dict):
                    return where
                await self._open()  # the device still has it: listen again
                continue
            if frame is None:
                where = await self._check(strikes)
                if isinstance(where, dict):
                    return where
                strikes = strikes + 1 if where == "unreachable" else 0
                continue
            strikes = 0
            if await self._forward(frame):
                return await self._device_entry()

    async def _check(self, strikes: int) -> dict[str, Any] | str:
        """Ask the device about our prompt: its history entry, 'queued', or 'unreachable'."""
        if not self.device.available:
            raise Lost("lost", f"device '{self.device.name}' is unhealthy")
        try:
            where = await self._locate()
        except UpstreamError as exc:
            if strikes + 1 >= MAX_STRIKES:
                raise Lost("lost", f"device '{self.device.name}' stopped answering") from exc
            return "unreachable"
        if where == "unknown":
            raise Lost("lost", f"device '{self.device.name}' no longer knows the prompt")
        return where

    async def _locate(self) -> dict[str, Any] | str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                queue = await self.backend.queue()
                items = [*queue.get("queue_running", []), *queue.get("queue_pending", [])]
                if any(len(i) > 1 and i[1] == self.dpid for i in items):
                    return "queued"
                entry = await self.backend.history(self.dpid)
        except TimeoutError as exc:  # this check's own limit, not the job's
            raise UpstreamTimeout(f"device '{self.device.name}' did not answer in time") from exc
        found = entry.get(self.dpid)
        return found if isinstance(found, dict) else "unknown"

    async def _forward(self, frame: Frame) -> bool:
        """Relay one device frame; True when the prompt is done (`executing` null)."""
        job, hub = self.job, self.ctx.hub
        if frame.data is not None:
            data = shapes.rewrite_binary(frame.data, self.dpid, job.prompt_id)
            self._deliver(data, broadcast=True)
            return False
        kind, body = frame.type, frame.body
        if kind not in ("executing", "executed", "execution_start", "execution_cached",
                        "progress", "progress_state", *_FINAL_EVENTS):  # fmt: skip
            return False  # status, feature_flags, custom monitors: device-wide, not ours
        if body.get("prompt_id", self.dpid) != self.dpid:
            return False
        if kind == "executing" and body.get("node") is None:
            return True
        if kind == "execution_start":
            self.exec_started = time.monotonic()
            await job_step(self.ctx.store.mark_executing(job.id, self.claim.token))
        if kind == "executed":
            await self._copy_outputs(body.get("node"), body.get("output"))
            body = {**body, "output": shapes.client_output(body.get("output"), job.id)}
        if kind == "executing" and job.client_id is not None:
            hub.executing(job.tenant_id, job.client_id, body.get("node"))
        message = text(str(kind), shapes.rewrite_ids(body, self.dpid, job.prompt_id))
        self._deliver(message, broadcast=kind in _TO_EVERYONE or kind == "execution_interrupted")
        return False

    def _deliver(self, frame: str | bytes, broadcast: bool) -> None:
        job = self.job
        if job.client_id is not None:
            self.ctx.hub.send(job.tenant_id, job.client_id, frame)
        elif broadcast:
            self.ctx.hub.broadcast(job.tenant_id, frame)

    async def _copy_outputs(self, node_id: Any, output: Any) -> None:
        await transfer.copy_outputs(
            self.ctx.artifacts,
            self.backend,
            self.job,
            self.claim.token,
            node_id,
            output,
            self.copied,
        )

    async def _device_entry(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S * 2):
                entry = await self.backend.history(self.dpid)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"device '{self.device.name}' did not answer in time") from exc
        found = entry.get(self.dpid)
        if not isinstance(found, dict):
            raise Lost("lost", f"device '{self.device.name}' lost the history of the prompt")
        return found

    # -- endings -------------------------------------------------------------------

    async def _finish(self, entry: dict[str, Any]) -> None:
        job, token = self.job, self.claim.token
        for node_id, output in (entry.get("outputs") or {}).items():
            await self._copy_outputs(node_id, output)
        result = shapes.device_result(entry, job, self.dpid)
        status = JobStatus(shapes.final_status(result))
        seconds = time.monotonic() - self.exec_started if self.exec_started else 0.0
        recorded = await self.ctx.store.complete(
            job, token, status, result, list(self.copied.values())
        )
        if not recorded:
            await self._abandon("superseded")
            return
        if status is JobStatus.SUCCESS and seconds > 0:
            self.ctx.observe(self.device, job.signature, seconds)
        self.device.breaker.reset_failures()
        await self._announce_end()
        self.ctx.finished(job, status.value, seconds, len(self.copied))

    async def _announce_end(self) -> None:
        job = self.job
        await self.ctx.status_changed(job.tenant_id)
        if job.client_id is not None:
            self.ctx.hub.executing(job.tenant_id, job.client_id, None)
            done = text("executing", {"node": None, "prompt_id": job.prompt_id})
            self.ctx.hub.send(job.tenant_id, job.client_id, done)

    async def _give_up(self, outcome: str, detail: str) -> None:
        job = self.job
        if outcome in ("lost", "timeout", "device_error"):
            self.device.breaker.record_failure(time.monotonic())
            self.ctx.gave_up(job, self.device.name)
        log.warning(
            "attempt_failed", action="jobs.attempt", job=job.id, device=self.device.name,
            outcome=outcome, detail=detail, attempt=self.claim.token,
        )  # fmt: skip
        self.ctx.artifacts.drop_attempt(job.tenant_id, job.id, self.claim.token)
        status = await self.ctx.store.requeue(
            job.id,
            self.claim.token,
            outcome,
            detail,
            max_attempts=self.ctx.max_attempts,
            failure=lambda d: shapes.failure_result(job, d),
        )
        if status is JobStatus.ERROR:
            self._deliver(text("execution_error", shapes.failure_message(job, detail)), False)
            await self._announce_end()
            self.ctx.finished(job, status.value, 0.0, 0)
        elif status is None:
            await self._abandon("superseded")
        else:
            await self.ctx.status_changed(job.tenant_id)

    async def _refused(self, body: Any) -> None:
        job = self.job
        detail = "the device refused the prompt: " + str(body)[:500]
        result = shapes.failure_result(job, detail)
        if not await self.ctx.store.complete(
            job, self.claim.token, JobStatus.ERROR, result, (), detail
        ):
            await self._abandon("superseded")
            return
        self._deliver(text("execution_error", result["status"]["messages"][0][1]), False)
        await self._announce_end()
        self.ctx.finished(job, JobStatus.ERROR.value, 0.0, 0)

    async def _abandon(self, outcome: str) -> None:
        """The job is someone else's now: stop the device's copy and record nothing.

        A later attempt that resumed this one shares its device prompt: that copy is
        left alone unless the job was cancelled.
        """
        current = await self.ctx.store.get_by_id(self.job.id)
        if (
            current is None
            or current.status is JobStatus.CANCELLED
            or current.device_prompt_id != self.dpid
        ):
            await self._interrupt_quietly()
        self.ctx.artifacts.drop_attempt(self.job.tenant_id, self.job.id, self.claim.token)
        await self.ctx.store.end_attempt(self.job.id, self.claim.token, outcome, None)

    async def _interrupt_quietly(self) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self.backend.delete([self.dpid])
                await self.backend.interrupt(self.dpid)
        except (UpstreamError, TimeoutError):
            pass


class _Refused(UpstreamError):
    """The device refused the prompt (HTTP 400): final, reported as the job's error."""

    def __init__(self, body: Any) -> None:
        super().__init__("the device refused the prompt")
        self.body = body


async def job_step(step: Any) -> None:
    """Run a store call in the background, logging (not raising) a failure."""
    try:
        await step
    except Exception:
        log.exception("job_step_failed", action="jobs.step")
