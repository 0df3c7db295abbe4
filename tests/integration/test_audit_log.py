"""The audit log on real databases (SQLite and PostgreSQL): entries chain, survive
the round trip bit for bit, and any edit, deletion or move in the table is
reported at the first entry it breaks; several writers make one chain; a table
that cannot be written closes the gate until it can."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import capture_logs

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.db.models import AuditRow
from sparkplane.errors import Unavailable
from sparkplane.security import keys
from sparkplane.security.audit import AuditLog
from sparkplane.security.audit_events import AdminEvent, InferenceEvent, JobEvent
from sparkplane.security.audit_store import AuditStore
from tests.support.audit_db import Db, audit_db
from tests.support.eventually import eventually

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    async with audit_db(database_url) as opened:
        yield opened


class Clock:
    """Hands out timestamps one minute apart from T0."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def inference(i: int, tenant: str = "t1", **extra: object) -> InferenceEvent:
    return InferenceEvent(
        tenant,
        "k1",
        model="llama3",
        op="chat",
        status=200,
        device="spark",
        tokens_in=i,
        tokens_out=2 * i,
        attempts=1,
        duration_ms=12.5 + i,
        ttfb_ms=3.25,
        **extra,  # type: ignore[arg-type]
    )


async def write(db: Db, n: int, clock: Clock | None = None) -> AuditLog:
    audit = AuditLog(db.store, clock=clock or Clock())
    for i in range(n):
        audit.record(inference(i))
    await audit.flush(timeout=30)
    return audit


async def rows(db: Db) -> list[AuditRow]:
    async with db.sessions() as session:
        return list(await session.scalars(select(AuditRow).order_by(AuditRow.seq)))


async def test_entries_chain_and_verify(db: Db) -> None:
    audit = await write(db, 25)
    stored = await rows(db)
    assert [r.seq for r in stored] == list(range(1, 26))
    assert stored[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(stored))
    assert stored[3].data["tokens_in"] == 3
    assert stored[3].tenant_id == "t1"
    report = await audit.verify(batch=7)  # several pages
    assert report.ok
    assert report.checked == 25
    assert (report.head_seq, report.head_hash) == (25, stored[-1].hash)


async def test_awkward_data_survives_the_round_trip(db: Db) -> None:
    audit = AuditLog(db.store)
    awkward = {
        "text": 'é 漢字 🙂 "quoted" back\\slash\nnew line\ttab \x00 nul',
        "floats": [0.1, 1e-7, 12345678.9, -0.0, 1e300, 2.5e-300],
        "ints": [0, -1, 2**53 + 1, 2**62],
        "nested": {"z": {"y": [True, False, None, {}, []]}, "a": ""},
    }
    audit.record(AdminEvent("tenants.update", "t1", "k1", target="acme", details=awkward))
    audit.record(JobEvent("t1", "k1", prompt_id="p1", status="completed", images=4))
    await audit.flush()
    report = await audit.verify()
    assert report.ok
    assert report.checked == 2
    assert (await rows(db))[0].data["details"]["floats"] == awkward["floats"]


async def tamper_edit(session: AsyncSession) -> None:
    await session.execute(update(AuditRow).where(AuditRow.seq == 7).values(data={"tokens_in": 999}))


async def tamper_delete(session: AsyncSession) -> None:
    await session.execute(delete(AuditRow).where(AuditRow.seq == 7))


async def tamper_swap(session: AsyncSession) -> None:
    # Entries 7 and 12 trade places (through a spare seq: seq is the key).
    for old, new in ((7, -1), (12, 7), (-1, 12)):
        await session.execute(update(AuditRow).where(AuditRow.seq == old).values(seq=new))


async def tamper_hash(session: AsyncSession) -> None:
    await session.execute(update(AuditRow).where(AuditRow.seq == 7).values(hash="a" * 64))


async def tamper_time(session: AsyncSession) -> None:
    await session.execute(
        update(AuditRow).where(AuditRow.seq == 7).values(at=T0 - timedelta(days=30))
    )


@pytest.mark.parametrize(
    ("tamper", "word"),
    [
        (tamper_edit, "edited"),
        (tamper_delete, "missing"),
        (tamper_swap, "link"),
        (tamper_hash, "edited"),
        (tamper_time, "edited"),
    ],
)
async def test_tampering_is_reported_at_the_first_broken_entry(
    db: Db, tamper: object, word: str
) -> None:
    audit = await write(db, 20)
    async with db.sessions() as session:
        await tamper(session)  # type: ignore[operator]
        await session.commit()
    report = await audit.verify(batch=5)
    assert report.first_broken == 7
    assert report.reason is not None
    assert word in report.reason
    assert report.head_seq == 6


@pytest.mark.parametrize(("column", "garbage"), [("data", "{not json"), ("at", "yesterday")])
async def test_unreadable_values_are_reported_not_crashed_on(
    sqlite_url: str, column: str, garbage: str
) -> None:
    # SQLite stores whatever text it is given; PostgreSQL would refuse these edits.
    engine = create_engine(sqlite_url)
    try:
        await migrate.upgrade(engine)
        db = Db(sqlite_url, engine, session_factory(engine), AuditStore(session_factory(engine)))
        audit = await write(db, 10)
        async with engine.begin() as conn:
            await conn.execute(
                text(f"UPDATE audit_log SET {column} = :garbage WHERE seq = 7"),
                {"garbage": garbage},
            )
        report = await audit.verify()
        assert report.first_broken == 7
        assert report.reason is not None
    finally:
        await engine.dispose()


async def test_appending_after_tampering_does_not_hide_it(db: Db) -> None:
    audit = await write(db, 10)
    async with db.sessions() as session:
        await tamper_edit(session)
        await session.commit()
    audit.record(inference(99))
    await audit.flush()
    assert (await audit.verify()).first_broken == 7


async def test_two_processes_writing_at_once_make_one_chain(db: Db) -> None:
    # Two engines stand for two sparkplane processes sharing the database.
    other_engine = create_engine(db.url)
    try:
        one = AuditLog(db.store, batch_size=7, interval=0.002)
        two = AuditLog(AuditStore(session_factory(other_engine)), batch_size=7, interval=0.002)
        await one.start()
        await two.start()

        async def produce(audit: AuditLog, tenant: str) -> None:
            for i in range(120):
                audit.record(inference(i, tenant=tenant))
                if i % 5 == 0:
                    await asyncio.sleep(0.001)

        with capture_logs() as logs:
            await asyncio.gather(produce(one, "one"), produce(two, "two"))
            await asyncio.gather(one.stop(), two.stop())
    finally:
        await other_engine.dispose()
    # Appenders queue for the head instead of colliding and retrying.
    assert not [e for e in logs if e["event"] == "audit_write_failed"]
    stored = await rows(db)
    assert len(stored) == 240
    tenants = [r.tenant_id for r in stored]
    assert tenants.count("one") == tenants.count("two") == 120
    if db.url.startswith("postgresql"):
        # Interleaved: PostgreSQL grants the advisory lock in queue order, so a
        # waiting writer goes next. SQLite's busy handler is not fair (a writer
        # may take the lock again and again while the other sleeps), so there
        # only the chain and the counts above say both wrote correctly.
        switches = sum(a != b for a, b in itertools.pairwise(tenants))
        assert switches >= 2
    for tenant in ("one", "two"):
        mine = [r.data["tokens_in"] for r in stored if r.tenant_id == tenant]
        assert mine == list(range(120))
    report = await AuditLog(db.store).verify()
    assert report.ok
    assert report.checked == 240


async def test_an_unwritable_table_closes_the_gate_until_it_recovers(db: Db) -> None:
    audit = AuditLog(db.store, interval=0.01, max_backoff=0.1)
    await audit.start()
    try:
        audit.record(inference(0))
        await audit.flush(timeout=10)
        async with db.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE audit_log RENAME TO audit_log_away"))
        audit.record(inference(1))
        await eventually(lambda: not audit.accepting)
        with pytest.raises(Unavailable) as refused:
            audit.raise_if_closed()
        assert refused.value.code == "audit_unavailable"
        audit.record(inference(2))  # recorded while closed: kept, not dropped
        async with db.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE audit_log_away RENAME TO audit_log"))
        await audit.flush(timeout=10)
        assert audit.accepting
    finally:
        await audit.stop()
    stored = await rows(db)
    assert [r.data["tokens_in"] for r in stored] == [0, 1, 2]
    assert (await audit.verify()).ok


async def test_a_database_that_is_down_closes_the_gate() -> None:
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nothing")
    try:
        audit = AuditLog(AuditStore(session_factory(engine)), interval=0.01, max_backoff=0.1)
        await audit.start()
        audit.record(inference(0))
        await eventually(lambda: not audit.accepting)
        with pytest.raises(Unavailable):
            audit.raise_if_closed()
        assert audit.pending == 1
        await audit.stop(timeout=0.2)
    finally:
        await engine.dispose()


async def test_fail_open_keeps_serving_while_the_table_is_unwritable(db: Db) -> None:
    audit = AuditLog(db.store, fail_closed=False, interval=0.01, max_backoff=0.1)
    async with db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_log RENAME TO audit_log_away"))
    audit.record(inference(0))
    with pytest.raises(TimeoutError):
        await audit.flush(timeout=0.3)
    assert audit.accepting
    assert not audit.healthy
    audit.raise_if_closed()
    async with db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_log_away RENAME TO audit_log"))
    await audit.flush(timeout=10)
    assert len(await rows(db)) == 1


async def test_content_is_kept_only_when_given_and_keys_never(db: Db) -> None:
    _, key = keys.generate()
    audit = AuditLog(db.store)
    audit.record(inference(1))
    audit.record(inference(2, content={"messages": [{"role": "user", "content": "hello"}]}))
    audit.record(
        AdminEvent(
            "devices.add",
            "t1",
            "k1",
            target="cloud",
            details={"api_key": "sk-provider-secret", "note": f"added with {key}"},
        )
    )
    audit.record(inference(3, error=f"upstream said: bad key {key}"))
    await audit.flush()
    stored = await rows(db)
    assert "content" not in stored[0].data
    assert stored[1].data["content"]["messages"][0]["content"] == "hello"
    async with db.engine.connect() as conn:
        raw = " ".join(
            str(v) for row in await conn.execute(text("SELECT * FROM audit_log")) for v in row
        )
    assert key not in raw
    assert "sk-provider-secret" not in raw
    assert (await audit.verify()).ok


async def test_export_and_search_filter_by_time_tenant_and_action(db: Db) -> None:
    clock = Clock()  # entry n is at T0 + n minutes
    audit = AuditLog(db.store, clock=clock)
    for i in range(10):
        audit.record(inference(i, tenant="a" if i % 2 else "b"))
    audit.record(AdminEvent("keys.create", "a", "k1", target="k2"))
    audit.record(AdminEvent("keys.revoke", "a", "k1", target="k2"))
    await audit.flush()
    since, until = T0 + timedelta(minutes=3), T0 + timedelta(minutes=6)
    exported = [e async for e in audit.export(since, until)]
    assert [e["seq"] for e in exported] == [3, 4, 5]
    assert exported[0]["at"] == "2026-11-01T12:03:00.000000+00:00"
    assert set(exported[0]) == {
        "seq",
        "at",
        "action",
        "tenant_id",
        "key_id",
        "data",
        "prev_hash",
        "hash",
        "tenant_seq",
        "tenant_prev_hash",
        "tenant_hash",
    }
    assert len([e async for e in audit.export(since)]) == 10  # seq 3 to 12
    # One tenant's export: its entries only, numbered and linked as its own chain.
    own = [e async for e in audit.export(T0, tenant_id="a")]
    assert [e["seq"] for e in own] == [1, 2, 3, 4, 5, 6, 7]
    assert {e["tenant_id"] for e in own} == {"a"}
    assert own[0]["prev_hash"] == "0" * 64
    assert "tenant_seq" not in own[0]
    assert await db.store.count(since, until) == 3

    newest = await db.store.search(limit=3)
    assert [e.seq for e in newest] == [10, 11, 12]
    page = await db.store.search(tenant_id="a", action="inference", after_seq=0, limit=3)
    assert [e.seq for e in page] == [2, 4, 6]
    page = await db.store.search(tenant_id="a", action="inference", after_seq=6, limit=3)
    assert [e.seq for e in page] == [8, 10]
    keys_only = await db.store.search(action="keys.*", since=T0)
    assert [e.action for e in keys_only] == ["keys.create", "keys.revoke"]
    assert await db.store.search(action="keys_*") == []  # `_` is not a wildcard


# -- each tenant's own chain -----------------------------------------------------


async def _mixed(db: Db) -> AuditLog:
    """Entries of tenants a and b interleaved, a few with no tenant, over two batches."""
    audit = AuditLog(db.store, clock=Clock(), batch_size=4)
    for i in range(12):
        audit.record(inference(i, tenant="ab"[i % 2]))
        if i % 5 == 0:
            audit.record(AdminEvent("devices.add", None, None, target=f"d{i}"))
    await audit.flush()
    return audit


async def test_each_tenant_has_its_own_chain(db: Db) -> None:
    audit = await _mixed(db)
    for tenant in ("a", "b"):
        report = await audit.verify(tenant_id=tenant)
        assert report.ok, report
        assert report.checked == 6
        assert report.head_seq == 6
    assert (await audit.verify()).ok
    assert (await audit.verify()).checked == 15
    # A later writer (another process) carries on each chain from its head.
    more = AuditLog(db.store, clock=Clock())
    more.record(inference(99, tenant="a"))
    more.record(inference(98, tenant="c"))
    await more.flush()
    assert (await audit.verify(tenant_id="a")).checked == 7
    assert (await audit.verify(tenant_id="c")).checked == 1
    assert (await audit.verify(tenant_id="nobody")).checked == 0


async def _tamper(db: Db, statement: object) -> None:
    async with db.sessions() as session:
        await session.execute(statement)  # type: ignore[call-overload]
        await session.commit()


async def _seq_of(db: Db, tenant: str, tenant_seq: int) -> int:
    async with db.sessions() as session:
        seq = await session.scalar(
            select(AuditRow.seq).where(
                AuditRow.tenant_id == tenant, AuditRow.tenant_seq == tenant_seq
            )
        )
    assert seq is not None
    return int(seq)


async def test_a_tenants_chain_shows_edits_and_deletions_of_its_entries(db: Db) -> None:
    audit = await _mixed(db)
    edited = await _seq_of(db, "a", 3)
    await _tamper(db, update(AuditRow).where(AuditRow.seq == edited).values(data={"x": 1}))
    report = await audit.verify(tenant_id="a")
    assert not report.ok
    assert report.first_broken == 3
    assert report.reason == "entry 3 does not match its hash: it was edited"
    assert (await audit.verify(tenant_id="b")).ok  # b's chain does not depend on a's

    deleted = await _seq_of(db, "b", 2)
    await _tamper(db, delete(AuditRow).where(AuditRow.seq == deleted))
    report = await audit.verify(tenant_id="b")
    assert report.first_broken == 2
    assert report.reason == "entry 2 missing (deleted): 3 follows"


async def test_moving_an_entry_to_another_tenant_breaks_both_chains(db: Db) -> None:
    audit = await _mixed(db)
    moved = await _seq_of(db, "a", 2)
    await _tamper(db, update(AuditRow).where(AuditRow.seq == moved).values(tenant_id="c"))
    assert (await audit.verify(tenant_id="a")).first_broken == 2
    assert (await audit.verify(tenant_id="c")).reason == "entry 1 missing (deleted): 2 follows"
    assert not (await audit.verify()).ok
