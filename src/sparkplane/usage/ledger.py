"""The accounting around one inference request: the audit gate and limits
before, usage and an audit entry after.

`open()` refuses the request while audit entries cannot be written
(fail-closed) and admits it against the caller's key and tenant limits (429
otherwise), before anything is sent to a device. `close()` runs exactly once
when the request is over, whatever the outcome: it settles the limiter with
the real token counts, hands a usage record to the meter and an entry to the
audit log. Both write in the background: no database work on the request path.
An answer leaves only once its audit entry is durable (journaled or stored):
`close_body()` returns then, and `tallied()` holds a stream's `[DONE]` until then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson

from sparkplane.backends.base import Operation
from sparkplane.errors import SparkplaneError, Unavailable
from sparkplane.jobs.events import JobFinished
from sparkplane.jobs.records import Job
from sparkplane.scheduler.dispatch import Answer
from sparkplane.security.audit import AuditLog
from sparkplane.security.audit_events import InferenceEvent, JobEvent
from sparkplane.security.limits import Limiter, Ticket
from sparkplane.security.principal import Principal
from sparkplane.usage.meter import Meter
from sparkplane.usage.records import UsageRecord
from sparkplane.usage.tokens import (
    StreamTally,
    TokenCount,
    admission_estimate,
    count_body,
    estimate_prompt,
)

NOTHING = TokenCount(0, 0, estimated=False)


@dataclass(slots=True)
class Entry:
    """One admitted request being accounted for."""

    principal: Principal
    op: Operation
    model: str
    stream: bool
    request_bytes: int
    ticket: Ticket
    started: float
    content: dict[str, Any] | None = None  # only for tenants that opted in
    closed: bool = False


class Ledger:
    """Audit gate, limits, metering and audit entries for inference requests."""

    def __init__(
        self,
        limiter: Limiter,
        meter: Meter,
        audit: AuditLog,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limiter = limiter
        self._meter = meter
        self._audit = audit
        self._clock = clock

    async def open(
        self,
        principal: Principal,
        op: Operation,
        model: str,
        body: bytes,
        *,
        stream: bool,
        max_tokens: int | None,
    ) -> Entry:
        """Admit the request or raise (Unavailable when audit is down, RateLimited)."""
        self._audit.raise_if_closed()
        size = len(body)
        estimate = (
            estimate_prompt(size)
            if op is Operation.EMBEDDING
            else admission_estimate(size, max_tokens)
        )
        try:
            ticket = await self._limiter.admit(principal, tokens=estimate)
        except SparkplaneError as exc:
            self.refused(principal, op, model, exc, stream=stream)
            raise
        content = {"request": orjson.loads(body)} if principal.policy.audit_content else None
        return Entry(principal, op, model, stream, size, ticket, self._clock(), content)

    def refused(
        self, principal: Principal, op: Operation, model: str, exc: SparkplaneError, *, stream: bool
    ) -> None:
        """Audit a request refused before it was admitted (limits, policy, unknown model)."""
        self._audit.record(
            InferenceEvent(
                tenant_id=principal.tenant_id or None,
                key_id=principal.key_id or None,
                model=model,
                op=op.value,
                status=exc.status,
                stream=stream,
                error=exc.code,
            )
        )

    async def close(
        self,
        entry: Entry,
        *,
        device: str | None,
        status: int,
        tokens: TokenCount = NOTHING,
        attempts: int = 0,
        error: str | None = None,
        answer: bytes | None = None,
    ) -> int | None:
        """Settle limits with what was really used; record usage and audit (once).

        Returns the audit entry's ticket (None when already closed), for `durable()`.
        """
        if entry.closed:
            return None
        entry.closed = True
        elapsed = self._clock() - entry.started
        await self._limiter.settle(entry.ticket, tokens=tokens.total, images=0)
        principal = entry.principal
        tenant_id, key_id = principal.tenant_id or None, principal.key_id or None
        self._meter.record(
            UsageRecord(
                tenant_id=tenant_id,
                key_id=key_id,
                kind=entry.op.value,
                model=entry.model,
                device=device,
                status=status,
                tokens_in=tokens.tokens_in,
                tokens_out=tokens.tokens_out,
                duration_s=elapsed,
                device_seconds=elapsed if device is not None else 0.0,
                estimated=tokens.estimated,
            )
        )
        content = entry.content
        if content is not None and answer is not None:
            content = {**content, "response": _json_or_text(answer)}
        return self._audit.record(
            InferenceEvent(
                tenant_id=tenant_id,
                key_id=key_id,
                model=entry.model,
                op=entry.op.value,
                status=status,
                device=device,
                stream=entry.stream,
                tokens_in=tokens.tokens_in,
                tokens_out=tokens.tokens_out,
                attempts=attempts,
                duration_ms=round(elapsed * 1000, 3),
                error=error,
                content=content,
            )
        )

    async def close_body(
        self, entry: Entry, *, device: str, status: int, body: bytes, attempts: int
    ) -> None:
        """Close before a plain answer is sent, counting its tokens; returns once its
        audit entry is durable (Unavailable, 503 `audit_unavailable`, if it cannot be)."""
        tokens = count_body(body, entry.request_bytes) if status < 400 else NOTHING
        ticket = await self.close(
            entry, device=device, status=status, tokens=tokens, attempts=attempts, answer=body
        )
        if ticket is not None:
            await self._audit.durable(ticket)

    async def tallied(
        self, entry: Entry, answer: Answer, stream: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        """Pass a stream through, counting its tokens; closes the entry when it ends.

        The chunk carrying `[DONE]` waits until the entry is durable; if it cannot
        be, the stream ends with an `audit_unavailable` error event instead.
        """
        tally = StreamTally(entry.request_bytes)
        try:
            async for chunk in stream:
                tally.feed(chunk)
                done = chunk.find(_DONE)
                if done >= 0 and not entry.closed:
                    chunk = await self._durable_end(entry, answer, tally, chunk, done)
                yield chunk
        finally:
            # Shielded: a client that leaves cancels this generator, but the limiter
            # must still be settled (a Redis round trip may be in flight).
            await asyncio.shield(self._close_stream(entry, answer, tally))

    async def _close_stream(self, entry: Entry, answer: Answer, tally: StreamTally) -> int | None:
        return await self.close(
            entry,
            device=answer.device.name,
            status=answer.outcome or answer.status,
            tokens=tally.result(),
            attempts=answer.attempts,
        )

    async def _durable_end(
        self, entry: Entry, answer: Answer, tally: StreamTally, chunk: bytes, done: int
    ) -> bytes:
        """The stream's last chunk, once its audit entry is durable."""
        ticket = await asyncio.shield(self._close_stream(entry, answer, tally))
        if ticket is None:
            return chunk
        try:
            await self._audit.durable(ticket)
        except Unavailable as exc:
            error = {"message": exc.message, "type": exc.type, "param": None, "code": exc.code}
            return chunk[:done] + b"data: " + orjson.dumps({"error": error}) + b"\n\n" + _DONE
        return chunk

    async def admit_job(self, principal: Principal) -> None:
        """Gate a workflow submission: audit up, and the caller's rate and image quota.

        A job may finish in another process, or after a restart, so no ticket is
        held for it: one image is counted per accepted prompt now, and the meter
        records the images really produced when the job ends.
        """
        self._audit.raise_if_closed()
        ticket = await self._limiter.admit(principal, tokens=0, images=1)
        await self._limiter.settle(ticket, tokens=0, images=1)

    async def reaudit_jobs(
        self, jobs: RecentJobs, within: timedelta = timedelta(minutes=10), most: int = 1000
    ) -> int:
        """Report again the jobs that ended in the last `within`, at start: a crash
        between a job's end and its audit entry would otherwise lose the entry. Each
        entry's id is its job's, so one already stored is skipped. Returns how many
        were reported (not how many were missing)."""
        cutoff = datetime.now(UTC) - within
        reported = 0
        for job in await jobs.history(None, max_items=most):
            if job.ended_at is None or job.ended_at < cutoff:
                continue
            reported += 1
            self._audit.record(
                JobEvent(
                    tenant_id=job.tenant_id or None,
                    key_id=job.key_id or None,
                    prompt_id=job.prompt_id,
                    status=job.status.value,
                    device=job.device,
                    images=_images(job),
                    attempts=job.attempts,
                    duration_ms=round((job.ended_at - job.created_at).total_seconds() * 1000, 3),
                    job_id=job.id,
                )
            )
        return reported

    def job_finished(self, job: JobFinished) -> None:
        """The jobs room's hook: meter the job and append it to the audit log."""
        tenant_id, key_id = job.tenant_id or None, job.key_id or None
        self._meter.record(
            UsageRecord(
                tenant_id=tenant_id,
                key_id=key_id,
                kind="workflow",
                model="comfyui",
                device=job.device,
                status=_JOB_STATUS.get(job.status, 500),
                images=job.images,
                duration_s=job.duration_s,
                device_seconds=job.device_seconds,
            )
        )
        self._audit.record(
            JobEvent(
                tenant_id=tenant_id,
                key_id=key_id,
                prompt_id=job.prompt_id,
                status=job.status,
                device=job.device,
                images=job.images,
                attempts=job.attempts,
                duration_ms=round(job.duration_s * 1000, 3),
                job_id=job.job_id,
            )
        )


_DONE = b"data: [DONE]\n\n"


class RecentJobs(Protocol):
    """What `reaudit_jobs` reads: the finished jobs, oldest first (`JobStore.history`)."""

    async def history(
        self, tenant_id: str | None, max_items: int | None = None, offset: int = -1
    ) -> list[Job]:
        """Finished jobs of `tenant_id` (None: every tenant), the newest `max_items`."""


def _images(job: Job) -> int:
    """The images in a job's result (as ComfyUI's history lists them per output node)."""
    outputs = (job.result or {}).get("outputs") or {}
    return sum(len(o.get("images") or []) for o in outputs.values() if isinstance(o, dict))


# A job's end as the HTTP status its usage row carries (errors counted as such).
_JOB_STATUS = {"success": 200, "error": 500, "interrupted": 499, "cancelled": 499}


def _json_or_text(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")
