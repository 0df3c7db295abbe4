"""The audit log's queue and writer over an in-memory store: nothing is lost,
batches are written in order, and a failing store closes the gate."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from sparkplane.errors import Unavailable
from sparkplane.security.audit import AuditLog
from sparkplane.security.audit_chain import GENESIS, Entry, StoredEntry, link
from sparkplane.security.audit_events import AdminEvent, InferenceEvent
from sparkplane.security.audit_store import AuditStore
from tests.support.eventually import eventually


class MemoryStore(AuditStore):
    """Keeps the chain in a list; `down` makes every append fail."""

    def __init__(self) -> None:
        self.rows: list[StoredEntry] = []
        self.batches: list[int] = []
        self.down = False
        self.gate = asyncio.Event()  # appends wait here while it is clear
        self.gate.set()

    async def append(self, entries: Sequence[Entry]) -> list[StoredEntry]:
        await self.gate.wait()
        if self.down:
            raise ConnectionError("database unreachable")
        head = (self.rows[-1].seq, self.rows[-1].hash) if self.rows else (0, GENESIS)
        chained = link(entries, *head)
        self.rows.extend(chained)
        self.batches.append(len(chained))
        return chained


def event(i: int) -> InferenceEvent:
    return InferenceEvent("t1", "k1", model=f"m{i}", op="chat", status=200)


async def test_record_does_no_io_and_flush_writes_in_order() -> None:
    store = MemoryStore()
    audit = AuditLog(store, batch_size=4)
    for i in range(10):
        audit.record(event(i))
    assert store.rows == []  # nothing happens until the writer or a flush runs
    assert audit.pending == 10
    await audit.flush()
    assert [r.data["model"] for r in store.rows] == [f"m{i}" for i in range(10)]
    assert store.batches == [4, 4, 2]
    assert audit.pending == 0


async def test_the_writer_batches_what_arrives_together() -> None:
    store = MemoryStore()
    audit = AuditLog(store, interval=0.05)
    await audit.start()
    try:
        for i in range(30):
            audit.record(event(i))
        await eventually(lambda: len(store.rows) == 30)
        assert store.batches == [30]
        audit.record(event(30))
        await eventually(lambda: len(store.rows) == 31)
    finally:
        await audit.stop()


async def test_stop_writes_what_is_left() -> None:
    store = MemoryStore()
    audit = AuditLog(store, interval=10)
    await audit.start()
    audit.record(event(0))
    audit.record(event(1))
    await audit.stop()
    assert len(store.rows) == 2


async def test_a_failing_store_closes_the_gate_and_keeps_every_entry() -> None:
    store = MemoryStore()
    store.down = True
    audit = AuditLog(store, interval=0.01, max_backoff=0.05)
    await audit.start()
    try:
        assert audit.accepting
        audit.record(event(0))
        await eventually(lambda: not audit.accepting)
        with pytest.raises(Unavailable) as refused:
            audit.raise_if_closed()
        assert refused.value.code == "audit_unavailable"
        assert refused.value.status == 503
        for i in range(1, 5):
            audit.record(event(i))
        await asyncio.sleep(0.1)
        assert audit.pending == 5
        assert not store.rows
        store.down = False
        await audit.flush(timeout=5)
        assert audit.accepting
        audit.raise_if_closed()
        assert [r.data["model"] for r in store.rows] == [f"m{i}" for i in range(5)]
    finally:
        await audit.stop()


async def test_a_long_backlog_closes_the_gate_until_written() -> None:
    store = MemoryStore()
    audit = AuditLog(store, max_backlog=3)
    for i in range(3):
        audit.record(event(i))
    assert audit.accepting
    with capture_logs() as logs:
        audit.record(event(3))
    assert not audit.accepting
    assert any(e["event"] == "audit_backlog" for e in logs)
    await audit.flush()
    assert audit.accepting
    assert len(store.rows) == 4


async def test_fail_open_keeps_accepting_and_warns() -> None:
    store = MemoryStore()
    store.down = True
    audit = AuditLog(store, fail_closed=False, max_backlog=2, max_backoff=0.05)
    with capture_logs() as logs:
        for i in range(5):
            audit.record(event(i))
        with pytest.raises(TimeoutError):
            await audit.flush(timeout=0.2)
    assert audit.accepting
    assert not audit.healthy
    audit.raise_if_closed()
    warnings = {e["event"] for e in logs if e["log_level"] == "warning"}
    assert {"audit_write_failed", "audit_backlog"} <= warnings
    store.down = False
    await audit.flush(timeout=5)
    assert len(store.rows) == 5
    assert audit.healthy


async def test_flush_waits_only_for_what_was_queued_before_it() -> None:
    store = MemoryStore()
    store.gate.clear()
    audit = AuditLog(store, batch_size=1)
    audit.record(event(0))
    flushing = asyncio.create_task(audit.flush())
    await asyncio.sleep(0.01)  # the flush is now writing entry 0
    audit.record(event(1))
    store.gate.set()
    await flushing
    assert [r.data["model"] for r in store.rows] == ["m0"]
    assert audit.pending == 1
    await audit.flush()
    assert len(store.rows) == 2


async def test_an_admin_event_names_actor_and_target() -> None:
    store = MemoryStore()
    audit = AuditLog(store)
    audit.record(AdminEvent("keys.revoke", "t1", "k1", target="abc123", details={"by": "cli"}))
    await audit.flush()
    (row,) = store.rows
    assert (row.action, row.tenant_id, row.key_id) == ("keys.revoke", "t1", "k1")
    assert row.data == {"target": "abc123", "details": {"by": "cli"}}
