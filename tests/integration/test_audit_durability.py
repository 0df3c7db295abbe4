"""Audit entries without loss or doubles, on SQLite and PostgreSQL: with the database
unreachable the journal keeps them (requests go on), a restart replays them in
order into one chain, a batch whose commit acknowledgement was lost is stored
once, and with neither journal nor database the gate closes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.db.models import AuditRow
from sparkplane.errors import Unavailable
from sparkplane.jobs.records import Job, JobStatus
from sparkplane.security.audit import AuditLog, to_entry
from sparkplane.security.audit_chain import Entry, StoredEntry
from sparkplane.security.audit_events import InferenceEvent, JobEvent
from sparkplane.security.audit_journal import Journal
from sparkplane.security.audit_store import AuditStore
from sparkplane.security.limits import LocalLimiter
from sparkplane.usage.ledger import Ledger
from sparkplane.usage.meter import Meter
from tests.support.audit_db import Db, audit_db
from tests.support.eventually import eventually

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    async with audit_db(database_url) as opened:
        yield opened


def inference(i: int, tenant: str = "t1") -> InferenceEvent:
    return InferenceEvent(tenant, "k1", model="m", op="chat", status=200, tokens_in=i)


async def tokens(db: Db) -> list[int]:
    async with db.sessions() as session:
        rows = (await session.scalars(select(AuditRow).order_by(AuditRow.seq))).all()
    return [r.data["tokens_in"] for r in rows]


async def take_table_away(db: Db) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_log RENAME TO audit_log_away"))


async def bring_table_back(db: Db) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_log_away RENAME TO audit_log"))


def fast(store: AuditStore, journal: Journal | None) -> AuditLog:
    return AuditLog(store, journal=journal, interval=0.01, max_backoff=0.05, durable_timeout=2)


async def test_an_outage_and_a_restart_lose_nothing_and_keep_one_chain(
    db: Db, tmp_path: Path
) -> None:
    folder = tmp_path / "audit-journal"
    audit = fast(db.store, Journal(folder))
    await audit.start()
    audit.record(inference(0))
    await audit.flush(timeout=10)
    await take_table_away(db)
    try:
        for i in range(1, 51):
            # Each answer may leave: its entry is on the local disk.
            await audit.durable(audit.record(inference(i)))
        assert audit.pending == 50  # none of them in the database
        assert audit.accepting  # the journal keeps entries: requests go on
        audit.raise_if_closed()
        await audit.stop(timeout=0.2)  # the process ends with the database still down
    finally:
        await bring_table_back(db)
    assert await tokens(db) == [0]
    assert list(folder.glob("seg-*.wal"))

    # Meanwhile another replica wrote to the same chain.
    other = fast(db.store, None)
    other.record(inference(100, tenant="t2"))
    await other.stop()

    restarted = fast(db.store, Journal(folder))
    await restarted.start()
    try:
        restarted.record(inference(51))
        await restarted.flush(timeout=10)
    finally:
        await restarted.stop()
    assert await tokens(db) == [0, 100, *range(1, 52)]
    assert list(folder.glob("seg-*.wal")) == []  # all stored: the journal is empty again
    report = await restarted.verify()
    assert report.ok, report
    assert report.checked == 53
    assert (await restarted.verify(tenant_id="t1")).ok


class LostAck(AuditStore):
    """Commits, then fails as if the acknowledgement never arrived (the first `lose` times)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], lose: int) -> None:
        super().__init__(sessions)
        self.lose = lose

    async def append(self, entries: Sequence[Entry]) -> list[StoredEntry]:
        stored = await super().append(entries)
        if self.lose:
            self.lose -= 1
            raise ConnectionResetError("connection lost before COMMIT's answer")
        return stored


async def test_a_lost_commit_acknowledgement_writes_no_double(db: Db, tmp_path: Path) -> None:
    audit = fast(LostAck(db.sessions, lose=2), Journal(tmp_path / "j"))
    await audit.start()
    try:
        for i in range(20):
            audit.record(inference(i))
        await audit.flush(timeout=10)
    finally:
        await audit.stop()
    assert await tokens(db) == list(range(20))
    assert (await audit.verify()).ok


async def test_replaying_entries_already_stored_writes_no_double(db: Db, tmp_path: Path) -> None:
    folder = tmp_path / "j"
    entries = [to_entry(inference(i), T0, entry_id=f"e{i}") for i in range(5)]
    # A crash after the commit and before the journal's files were deleted:
    # the journal still holds entries the table has.
    journal = Journal(folder)
    journal.open()
    journal.append(entries, len(entries))
    journal.close()
    await db.store.append(entries[:3])

    replay = fast(db.store, Journal(folder))
    await replay.start()
    await replay.stop()
    assert await tokens(db) == list(range(5))
    assert list(folder.glob("seg-*.wal")) == []
    assert (await replay.verify()).ok


class BrokenJournal(Journal):
    """A journal on a disk that refuses every write."""

    def append(self, entries: Sequence[Entry], end: int) -> None:
        raise OSError(28, "No space left on device")


async def test_with_neither_journal_nor_database_the_gate_closes(db: Db, tmp_path: Path) -> None:
    audit = fast(db.store, BrokenJournal(tmp_path / "j"))
    await audit.start()
    try:
        # The journal failing alone closes nothing: answers wait for the database.
        await audit.durable(audit.record(inference(0)))
        assert audit.accepting
        await take_table_away(db)
        audit.record(inference(1))
        await eventually(lambda: not audit.accepting)
        with pytest.raises(Unavailable) as refused:
            audit.raise_if_closed()
        assert refused.value.code == "audit_unavailable"
        with pytest.raises(Unavailable):
            await audit.durable(audit.record(inference(2)))
        await bring_table_back(db)
        await audit.flush(timeout=10)
        assert audit.accepting
    finally:
        await audit.stop()
    assert await tokens(db) == [0, 1, 2]


async def test_a_job_reported_twice_has_one_entry(db: Db) -> None:
    audit = fast(db.store, None)
    job = JobEvent("t1", "k1", prompt_id="p1", status="success", job_id="job-1")
    audit.record(job)
    await audit.flush(timeout=10)
    audit.record(job)  # reported again, e.g. by a recovery after a crash
    audit.record(JobEvent("t1", "k1", prompt_id="p2", status="success", job_id="job-2"))
    await audit.flush(timeout=10)
    await audit.stop()
    entries = await db.store.search(action="job", limit=10)
    assert [e.data["prompt_id"] for e in entries] == ["p1", "p2"]


def _job(job_id: str, ended: datetime) -> Job:
    return Job(
        id=job_id, seq=1, prompt_id=f"p-{job_id}", tenant_id="t1", key_id="k1", client_id=None,
        number=1, status=JobStatus.SUCCESS, prompt={}, extra_data={}, outputs=[],
        node_errors={}, signature="", attempts=1, device="comfy0", device_prompt_id=None,
        resume=False, created_at=ended - timedelta(seconds=2), started_at=None,
        executing_at=None, ended_at=ended,
        result={"outputs": {"9": {"images": [{"filename": "a.png"}, {"filename": "b.png"}]}}},
        error=None,
    )  # fmt: skip


class Recent:
    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs

    async def history(
        self, tenant_id: str | None, max_items: int | None = None, offset: int = -1
    ) -> list[Job]:
        return self.jobs[-(max_items or len(self.jobs)) :]


async def test_jobs_ended_just_before_a_crash_get_their_entry_once(db: Db) -> None:
    audit = fast(db.store, None)
    ledger = Ledger(LocalLimiter(), Meter(db.sessions), audit)
    now = datetime.now(UTC)
    reported, lost, old = _job("a", now), _job("b", now), _job("c", now - timedelta(hours=1))
    # Job a's entry was stored before the crash; b's was lost with the process.
    audit.record(JobEvent("t1", "k1", prompt_id="p-a", status="success", job_id="a"))
    await audit.flush(timeout=10)
    assert await ledger.reaudit_jobs(Recent([old, reported, lost])) == 2
    await audit.flush(timeout=10)
    await audit.stop()
    entries = await db.store.search(action="job", limit=10)
    assert [(e.data["prompt_id"], e.data["images"]) for e in entries] == [
        ("p-a", 0),
        ("p-b", 2),
    ]


async def test_a_job_reported_twice_in_one_batch_has_one_entry(db: Db) -> None:
    audit = fast(db.store, None)
    job = JobEvent("t1", "k1", prompt_id="p1", status="success", job_id="job-1")
    audit.record(job)
    audit.record(job)  # both wait in the same batch: neither is stored yet
    audit.record(inference(1))
    await audit.flush(timeout=10)
    await audit.stop()
    assert [e.action for e in await db.store.search(limit=10)] == ["job", "inference"]
    assert (await audit.verify()).ok
