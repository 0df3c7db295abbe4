"""Named reads of jobs: by id, listings, the queue, history, attempts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.db.models import JobAttemptRow, JobRow
from sparkplane.jobs.records import FINAL, Attempt, Job, JobStatus

HISTORY_STATUSES = (JobStatus.SUCCESS, JobStatus.ERROR, JobStatus.INTERRUPTED)


def job_record(row: JobRow) -> Job:
    """A row as a `Job`."""
    return Job(
        id=row.id,
        seq=row.seq,
        prompt_id=row.prompt_id,
        tenant_id=row.tenant_id,
        key_id=row.key_id,
        client_id=row.client_id,
        number=row.number,
        status=JobStatus(row.status),
        prompt=row.prompt,
        extra_data=row.extra_data or {},
        outputs=list(row.outputs or []),
        node_errors=row.node_errors or {},
        signature=row.signature,
        attempts=row.attempts,
        device=row.device,
        device_prompt_id=row.device_prompt_id,
        resume=row.resume,
        created_at=row.created_at,
        started_at=row.started_at,
        executing_at=row.executing_at,
        ended_at=row.ended_at,
        result=row.result,
        error=row.error,
        secrets=row.secrets or {},
        idempotency_key=row.idempotency_key,
        policy=row.policy or {},
        history_hidden=row.history_hidden,
    )


def _attempt(row: JobAttemptRow) -> Attempt:
    return Attempt(
        job_id=row.job_id,
        attempt=row.attempt,
        device=row.device,
        device_prompt_id=row.device_prompt_id,
        worker=row.worker,
        started_at=row.started_at,
        ended_at=row.ended_at,
        outcome=row.outcome,
        detail=row.detail,
    )


def on_postgres(session: AsyncSession) -> bool:
    """Whether the session talks to PostgreSQL (row locks with SKIP LOCKED)."""
    bind = session.bind
    return bind is not None and bind.dialect.name == "postgresql"


def _tenant(query: Select[Any], tenant_id: str | None) -> Select[Any]:
    return query if tenant_id is None else query.where(JobRow.tenant_id == tenant_id)


_BIGGEST = 2**62


class JobReads:
    """Reading jobs (the base of `JobStore`)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def get(self, prompt_id: str, tenant_id: str | None) -> Job | None:
        """The job with this prompt_id (in this tenant, or any when None)."""
        query = _tenant(select(JobRow).where(JobRow.prompt_id == prompt_id), tenant_id)
        async with self._sessions() as session:
            row = (await session.scalars(query.order_by(JobRow.seq.desc()))).first()
        return job_record(row) if row is not None else None

    async def get_by_id(self, job_id: str) -> Job | None:
        """The job with this internal id."""
        async with self._sessions() as session:
            row = await session.scalar(select(JobRow).where(JobRow.id == job_id))
        return job_record(row) if row is not None else None

    async def list_jobs(
        self, tenant_id: str | None, status: str | None = None, limit: int = 100
    ) -> list[Job]:
        """Jobs, newest first."""
        query = _tenant(select(JobRow), tenant_id)
        if status is not None:
            query = query.where(JobRow.status == status)
        async with self._sessions() as session:
            rows = await session.scalars(query.order_by(JobRow.seq.desc()).limit(limit))
            return [job_record(r) for r in rows]

    async def unfinished(self, tenant_id: str | None) -> list[Job]:
        """Queued and running jobs in run order."""
        query = _tenant(select(JobRow), tenant_id).where(
            JobRow.status.in_((JobStatus.QUEUED.value, JobStatus.RUNNING.value))
        )
        async with self._sessions() as session:
            rows = await session.scalars(query.order_by(JobRow.number, JobRow.seq))
            return [job_record(r) for r in rows]

    async def remaining(self, tenant_id: str | None) -> int:
        """ComfyUI's queue_remaining: queued plus running jobs."""
        query = _tenant(select(func.count()).select_from(JobRow), tenant_id).where(
            JobRow.status.in_((JobStatus.QUEUED.value, JobStatus.RUNNING.value))
        )
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)

    async def history(
        self, tenant_id: str | None, max_items: int | None = None, offset: int = -1
    ) -> list[Job]:
        """Finished jobs oldest first, with ComfyUI's max_items/offset rules."""
        # ComfyUI slices Python lists, so any integer works there; databases take
        # 64-bit values, and no history is longer than that anyway.
        offset = min(offset, _BIGGEST)
        max_items = None if max_items is None else max(min(max_items, _BIGGEST), 0)
        visible = _tenant(select(JobRow), tenant_id).where(
            JobRow.status.in_([s.value for s in HISTORY_STATUSES]),
            JobRow.history_hidden.is_(False),
            JobRow.result.is_not(None),
        )
        if offset < 0 and max_items is not None:
            total = await self._count(visible)
            offset = max(total - max_items, 0)
        query = visible.order_by(JobRow.ended_at, JobRow.seq).offset(max(offset, 0))
        if max_items is not None:
            query = query.limit(max_items)
        async with self._sessions() as session:
            return [job_record(r) for r in await session.scalars(query)]

    async def _count(self, query: Select[Any]) -> int:
        async with self._sessions() as session:
            return int(
                await session.scalar(select(func.count()).select_from(query.subquery())) or 0
            )

    async def hide_history(self, tenant_id: str | None, prompt_ids: list[str] | None) -> None:
        """POST /history: delete these entries (all when None) from the caller's view."""
        query = update(JobRow).where(JobRow.status.in_([s.value for s in FINAL]))
        if tenant_id is not None:
            query = query.where(JobRow.tenant_id == tenant_id)
        if prompt_ids is not None:
            query = query.where(JobRow.prompt_id.in_(prompt_ids))
        async with self._sessions() as session:
            await session.execute(query.values(history_hidden=True))
            await session.commit()

    async def attempts(self, job_id: str) -> list[Attempt]:
        """A job's attempts in order."""
        query = (
            select(JobAttemptRow)
            .where(JobAttemptRow.job_id == job_id)
            .order_by(JobAttemptRow.attempt)
        )
        async with self._sessions() as session:
            return [_attempt(r) for r in await session.scalars(query)]
