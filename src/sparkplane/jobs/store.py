"""Named database operations on jobs. Nothing else builds job queries.

Claiming is safe with several processes on one database: on PostgreSQL the
candidates are read with `FOR UPDATE SKIP LOCKED` (each process sees rows no
other is deciding on), and on both databases the claim itself is a conditional
UPDATE (`status = 'queued' AND attempts = seen`) that only one process can win.
`attempts` is the fencing token of the running attempt: renewing the lease,
completing and requeueing all name it, so an attempt that was given up (its
lease expired, the job was retried elsewhere) can record nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sparkplane.db.models import ArtifactRow, JobAttemptRow, JobRow, utcnow
from sparkplane.jobs.queries import JobReads, job_record, on_postgres
from sparkplane.jobs.records import (
    Artifact,
    Claim,
    Job,
    JobStatus,
    NewJob,
)

# How a chooser answers: the job to run, on which device, and whether to look for
# the previous attempt on that device first.
Choice = tuple[Job, str, bool]
Chooser = Callable[[Sequence[Job]], Choice | None]
# Attempt outcomes that count against comfy_max_attempts (a device failed us).
FAILED_OUTCOMES = ("lost", "timeout", "device_error")


class JobStore(JobReads):
    """Jobs in the database: submitting, claiming, leases, outcomes (reads in queries.py)."""

    # -- submission ------------------------------------------------------------

    async def enqueue(self, new: NewJob) -> tuple[Job, bool]:
        """Store a job; (job, True), or (the existing job, False) when the tenant
        already has one with this prompt_id or Idempotency-Key."""
        now = utcnow()
        row = JobRow(
            id=uuid.uuid4().hex,
            prompt_id=new.prompt_id,
            tenant_id=new.tenant_id,
            key_id=new.key_id,
            client_id=new.client_id,
            idempotency_key=new.idempotency_key,
            number=0.0 if new.number is None else new.number,
            status=JobStatus.QUEUED.value,
            prompt=new.prompt,
            extra_data=new.extra_data,
            secrets=new.secrets,
            outputs=new.outputs,
            node_errors=new.node_errors,
            signature=new.signature,
            policy=new.policy,
            attempts=0,
            resume=False,
            created_at=now,
            history_hidden=False,
        )
        async with self._sessions() as session:
            session.add(row)
            try:
                await session.flush()
                if new.number is None:
                    # ComfyUI's counter: 0, 1, 2... in arrival order; `front` negates it.
                    number = float(row.seq - 1)
                    row.number = -number if new.front else number
                await session.commit()
                return job_record(row), True
            except IntegrityError:
                await session.rollback()
        existing = await self._existing(new)
        if existing is None:  # the conflicting row vanished: try once more
            return await self.enqueue(new)
        return existing, False

    async def _existing(self, new: NewJob) -> Job | None:
        match = JobRow.prompt_id == new.prompt_id
        if new.idempotency_key is not None:
            match = or_(match, JobRow.idempotency_key == new.idempotency_key)
        query = select(JobRow).where(JobRow.tenant_id == new.tenant_id, match).order_by(JobRow.seq)
        async with self._sessions() as session:
            row = (await session.scalars(query)).first()
        return job_record(row) if row is not None else None

    # -- running ---------------------------------------------------------------

    async def claim(
        self, worker: str, choose: Chooser, lease_s: float, *, limit: int = 16
    ) -> Claim | None:
        """Take the first queued job (by number) that `choose` can place now."""
        query = (
            select(JobRow)
            .where(JobRow.status == JobStatus.QUEUED.value)
            .order_by(JobRow.number, JobRow.seq)
            .limit(limit)
        )
        async with self._sessions() as session:
            if on_postgres(session):
                query = query.with_for_update(skip_locked=True)
            rows = list(await session.scalars(query))
            if not rows:
                return None
            chosen = choose([job_record(r) for r in rows])
            if chosen is None:
                await session.rollback()
                return None
            job, device, resume = chosen
            now = utcnow()
            token = job.attempts + 1
            resume = resume and job.device_prompt_id is not None
            device_prompt_id = job.device_prompt_id if resume else uuid.uuid4().hex
            assert device_prompt_id is not None
            result = await session.execute(
                update(JobRow)
                .where(
                    JobRow.id == job.id,
                    JobRow.status == JobStatus.QUEUED.value,
                    JobRow.attempts == job.attempts,
                )
                .values(
                    status=JobStatus.RUNNING.value,
                    attempts=token,
                    lease_owner=worker,
                    lease_until=now + timedelta(seconds=lease_s),
                    device=device,
                    device_prompt_id=device_prompt_id,
                    resume=False,
                    started_at=func.coalesce(JobRow.started_at, now),
                    executing_at=None,
                )
            )
            if getattr(result, "rowcount", 0) != 1:
                await session.rollback()
                return None  # another process won this one; the caller asks again
            session.add(
                JobAttemptRow(
                    job_id=job.id,
                    attempt=token,
                    device=device,
                    device_prompt_id=device_prompt_id,
                    worker=worker,
                    started_at=now,
                )
            )
            await session.commit()
        job.status, job.attempts, job.device = JobStatus.RUNNING, token, device
        job.device_prompt_id = device_prompt_id
        return Claim(job, token, device, device_prompt_id, resume)

    async def renew(self, worker: str, lease_s: float) -> set[tuple[str, int]]:
        """Extend this worker's leases; returns the (job id, token) pairs it still holds."""
        held = and_(JobRow.lease_owner == worker, JobRow.status == JobStatus.RUNNING.value)
        async with self._sessions() as session:
            await session.execute(
                update(JobRow).where(held).values(lease_until=utcnow() + timedelta(seconds=lease_s))
            )
            rows = await session.execute(select(JobRow.id, JobRow.attempts).where(held))
            await session.commit()
            return {(job_id, token) for job_id, token in rows}

    async def mark_executing(self, job_id: str, token: int) -> None:
        """The device started executing the job (it left ComfyUI's pending list)."""
        async with self._sessions() as session:
            await session.execute(
                update(JobRow)
                .where(self._fence(job_id, token), JobRow.executing_at.is_(None))
                .values(executing_at=utcnow())
            )
            await session.commit()

    @staticmethod
    def _fence(job_id: str, token: int) -> Any:
        return and_(
            JobRow.id == job_id,
            JobRow.attempts == token,
            JobRow.status == JobStatus.RUNNING.value,
        )

    async def complete(
        self,
        job: Job,
        token: int,
        status: JobStatus,
        result: dict[str, Any],
        artifacts: Sequence[Artifact] = (),
        error: str | None = None,
    ) -> bool:
        """Record the outcome of attempt `token`; False (nothing written) if it was given up."""
        now = utcnow()
        async with self._sessions() as session:
            done = await session.execute(
                update(JobRow)
                .where(self._fence(job.id, token))
                .values(
                    status=status.value,
                    result=result,
                    error=error,
                    ended_at=now,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            if getattr(done, "rowcount", 0) != 1:
                await session.rollback()
                return False
            for a in artifacts:
                session.add(
                    ArtifactRow(
                        job_id=job.id,
                        tenant_id=job.tenant_id,
                        key_id=job.key_id,
                        node_id=a.node_id,
                        type=a.type,
                        subfolder=a.subfolder,
                        filename=a.filename,
                        path=a.path,
                        size=a.size,
                        created_at=now,
                    )
                )
            await self._end_attempt(session, job.id, token, status.value, error)
            await session.commit()
        return True

    async def requeue(
        self,
        job_id: str,
        token: int,
        outcome: str,
        detail: str,
        *,
        max_attempts: int,
        failure: Callable[[str], dict[str, Any]],
        resume: bool = False,
    ) -> JobStatus | None:
        """Give attempt `token` up: back to the queue, or ERROR once `max_attempts`
        attempts failed (then `failure(detail)` is its history). None if fenced out."""
        async with self._sessions() as session:
            failed = await session.scalar(
                select(func.count())
                .select_from(JobAttemptRow)
                .where(
                    JobAttemptRow.job_id == job_id,
                    JobAttemptRow.attempt != token,
                    JobAttemptRow.outcome.in_(FAILED_OUTCOMES),
                )
            )
            counts = outcome in FAILED_OUTCOMES
            exhausted = counts and int(failed or 0) + 1 >= max_attempts
            values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
            if exhausted:
                status = JobStatus.ERROR
                values |= {"result": failure(detail), "error": detail, "ended_at": utcnow()}
            else:
                status = JobStatus.QUEUED
                values |= {"resume": resume, "executing_at": None}
            moved = await session.execute(
                update(JobRow)
                .where(self._fence(job_id, token))
                .values(status=status.value, **values)
            )
            if getattr(moved, "rowcount", 0) != 1:
                await session.rollback()
                return None
            await self._end_attempt(session, job_id, token, outcome, detail)
            await session.commit()
        return status

    async def end_attempt(self, job_id: str, token: int, outcome: str, detail: str | None) -> None:
        """Note how an attempt ended without touching the job (a superseded attempt)."""
        async with self._sessions() as session:
            await self._end_attempt(session, job_id, token, outcome, detail)
            await session.commit()

    @staticmethod
    async def _end_attempt(
        session: AsyncSession, job_id: str, token: int, outcome: str, detail: str | None
    ) -> None:
        await session.execute(
            update(JobAttemptRow)
            .where(
                JobAttemptRow.job_id == job_id,
                JobAttemptRow.attempt == token,
                JobAttemptRow.outcome.is_(None),
            )
            .values(outcome=outcome, detail=detail, ended_at=utcnow())
        )

    async def reap(self, now: datetime | None = None) -> list[str]:
        """Requeue running jobs whose lease expired (their process died or hangs)."""
        now = now or utcnow()
        expired = and_(JobRow.status == JobStatus.RUNNING.value, JobRow.lease_until < now)
        async with self._sessions() as session:
            query = select(JobRow.id, JobRow.attempts).where(expired)
            if on_postgres(session):
                query = query.with_for_update(skip_locked=True)
            found = list(await session.execute(query))
            for job_id, token in found:
                await session.execute(
                    update(JobRow)
                    .where(self._fence(job_id, token), JobRow.lease_until < now)
                    .values(
                        status=JobStatus.QUEUED.value,
                        lease_owner=None,
                        lease_until=None,
                        resume=True,
                        executing_at=None,
                    )
                )
                await self._end_attempt(session, job_id, token, "lease_expired", None)
            await session.commit()
        return [job_id for job_id, _ in found]

    async def cancel(self, job: Job) -> bool:
        """Cancel a job that has not started executing; False if it already had."""
        pending = or_(
            JobRow.status == JobStatus.QUEUED.value,
            and_(JobRow.status == JobStatus.RUNNING.value, JobRow.executing_at.is_(None)),
        )
        async with self._sessions() as session:
            done = await session.execute(
                update(JobRow)
                .where(JobRow.id == job.id, pending)
                .values(
                    status=JobStatus.CANCELLED.value,
                    ended_at=utcnow(),
                    lease_owner=None,
                    lease_until=None,
                )
            )
            if job.status is JobStatus.RUNNING:
                await self._end_attempt(session, job.id, job.attempts, "cancelled", None)
            await session.commit()
        return getattr(done, "rowcount", 0) == 1
