"""The job store on SQLite and PostgreSQL: durable enqueue, exactly-once claims,
fencing of late results, lease expiry, cancel, history order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.db.models import utcnow
from sparkplane.jobs.records import Job, JobStatus, NewJob
from sparkplane.jobs.store import Choice, Chooser, JobStore


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[JobStore]:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    yield JobStore(session_factory(engine))
    await engine.dispose()


def new(prompt_id: str, **changes: object) -> NewJob:
    job = NewJob(
        prompt_id=prompt_id,
        tenant_id="t1",
        key_id="k1",
        prompt={"1": {"class_type": "X", "inputs": {}}},
        extra_data={},
        outputs=["1"],
        node_errors={},
        signature="sig",
    )
    for key, value in changes.items():
        setattr(job, key, value)
    return job


def first(device: str = "dev") -> Chooser:
    def choose(jobs: Sequence[Job]) -> Choice | None:
        return (jobs[0], device, False) if jobs else None

    return choose


def failure(detail: str) -> dict[str, object]:
    return {"status": {"status_str": "error", "messages": [["execution_error", detail]]}}


async def test_numbers_follow_arrival_and_front_goes_first(store: JobStore) -> None:
    a, _ = await store.enqueue(new("a"))
    b, _ = await store.enqueue(new("b"))
    c, _ = await store.enqueue(new("c", front=True))
    assert (a.number, b.number) == (0, 1)
    assert c.number < 0
    claim = await store.claim("w", first(), 30)
    assert claim is not None
    assert claim.job.prompt_id == "c"


async def test_a_repeated_idempotency_key_or_prompt_id_returns_the_first_job(
    store: JobStore,
) -> None:
    one, created = await store.enqueue(new("p1", idempotency_key="key"))
    again, created_again = await store.enqueue(new("p2", idempotency_key="key"))
    same_id, created_same = await store.enqueue(new("p1"))
    assert created
    assert not created_again
    assert not created_same
    assert again.id == one.id == same_id.id
    other_tenant, created_other = await store.enqueue(new("p1", tenant_id="t2"))
    assert created_other
    assert other_tenant.id != one.id
    assert len(await store.list_jobs(None)) == 2


async def test_concurrent_claims_take_each_job_exactly_once(store: JobStore) -> None:
    for i in range(30):
        await store.enqueue(new(f"p{i}"))

    async def drain(worker: str) -> list[str]:
        got = []
        while (claim := await store.claim(worker, first(), 30)) is not None:
            got.append(claim.job.prompt_id)
        return got

    results = await asyncio.gather(*(drain(f"w{i}") for i in range(4)))
    taken = [p for r in results for p in r]
    assert sorted(taken) == sorted(f"p{i}" for i in range(30))


async def test_a_given_up_attempt_cannot_record_a_result(store: JobStore) -> None:
    await store.enqueue(new("p"))
    first_claim = await store.claim("w1", first("slow"), 30)
    assert first_claim is not None
    # w1's lease runs out (its process hangs); the reaper puts the job back.
    assert await store.reap(utcnow() + timedelta(seconds=60)) == [first_claim.job.id]
    second = await store.claim("w2", first("fast"), 30)
    assert second is not None
    assert second.token == first_claim.token + 1
    assert await store.complete(second.job, second.token, JobStatus.SUCCESS, {"outputs": {"a": 1}})
    # The first device comes back and finishes too: ignored, nothing recorded twice.
    late = await store.complete(first_claim.job, first_claim.token, JobStatus.SUCCESS, {"x": 1})
    assert late is False
    job = await store.get("p", "t1")
    assert job is not None
    assert job.result == {"outputs": {"a": 1}}
    assert job.device == "fast"
    attempts = await store.attempts(job.id)
    assert [(a.device, a.outcome) for a in attempts] == [
        ("slow", "lease_expired"),
        ("fast", "success"),
    ]
    assert await store.renew("w1", 30) == set()


async def test_requeue_counts_failed_attempts_and_then_fails_the_job(store: JobStore) -> None:
    await store.enqueue(new("p"))
    statuses = []
    for _ in range(3):
        claim = await store.claim("w", first(), 30)
        assert claim is not None
        statuses.append(
            await store.requeue(
                claim.job.id, claim.token, "lost", "gone", max_attempts=3, failure=failure
            )
        )
    assert statuses == [JobStatus.QUEUED, JobStatus.QUEUED, JobStatus.ERROR]
    job = await store.get("p", "t1")
    assert job is not None
    assert job.status is JobStatus.ERROR
    assert job.error == "gone"
    assert [j.prompt_id for j in await store.history("t1")] == ["p"]


async def test_cancel_only_before_execution(store: JobStore) -> None:
    queued, _ = await store.enqueue(new("q"))
    assert await store.cancel(queued)
    await store.enqueue(new("r"))
    claim = await store.claim("w", first(), 30)
    assert claim is not None
    await store.mark_executing(claim.job.id, claim.token)
    assert not await store.cancel(claim.job)
    assert (await store.get("q", "t1")).status is JobStatus.CANCELLED  # type: ignore[union-attr]


async def test_history_is_per_tenant_oldest_first_with_max_items_and_offset(
    store: JobStore,
) -> None:
    for name, tenant in [("a", "t1"), ("b", "t2"), ("c", "t1"), ("d", "t1")]:
        await store.enqueue(new(name, tenant_id=tenant))
        claim = await store.claim("w", first(), 30)
        assert claim is not None
        await store.complete(claim.job, claim.token, JobStatus.SUCCESS, {"outputs": {}})
    assert [j.prompt_id for j in await store.history("t1")] == ["a", "c", "d"]
    assert [j.prompt_id for j in await store.history("t1", max_items=2)] == ["c", "d"]
    assert [j.prompt_id for j in await store.history("t1", 1, offset=1)] == ["c"]
    await store.hide_history("t1", ["c"])
    assert [j.prompt_id for j in await store.history("t1")] == ["a", "d"]
    assert [j.prompt_id for j in await store.history("t2")] == ["b"]
