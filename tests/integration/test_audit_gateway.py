"""Through the gateway: with the audit table unreachable, answers still leave
because their entries are journaled first, and each entry reaches the table
once it is back; a process that ends with entries only in its journal writes
them at its next start."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, text

from sparkplane.db.engine import close_engine, create_engine, session_factory
from sparkplane.db.models import AuditRow
from sparkplane.security.audit_journal import decode
from tests.conftest import SettingsFactory
from tests.fakes.openai_engine import FakeOpenAIEngine
from tests.support.eventually import eventually
from tests.support.gateway import Gateway, running_gateway

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


async def _rename(gw: Gateway, old: str, new: str) -> None:
    async with gw.runtime.engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


def _journaled(folder: Path) -> list[str]:
    actions = []
    for segment in sorted(folder.glob("seg-*.wal")):
        for line in segment.read_bytes().splitlines(keepends=True):
            entry = decode(line)
            assert entry is not None
            actions.append(entry.action)
    return actions


async def _stored(gw: Gateway) -> list[str]:
    async with session_factory(gw.runtime.engine)() as session:
        return list(await session.scalars(select(AuditRow.action).order_by(AuditRow.seq)))


async def test_answers_leave_while_the_table_is_away_and_their_entries_follow(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    folder = settings.home / "audit-journal"
    async with FakeOpenAIEngine() as engine, running_gateway(settings) as gw:
        r = await gw.client.post("/api/devices", json={"url": engine.url, "name": "box1"})
        assert r.status_code == 201, r.text
        await eventually(lambda: gw.runtime.audit.pending == 0)
        await _rename(gw, "audit_log", "audit_log_away")

        plain = await gw.client.post("/v1/chat/completions", json=CHAT)
        assert plain.status_code == 200, plain.text
        streamed = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert streamed.status_code == 200
        assert streamed.text.rstrip().endswith("data: [DONE]")
        # Both answers left with their entries on the local disk, not in the table.
        assert _journaled(folder) == ["inference", "inference"]

        await _rename(gw, "audit_log_away", "audit_log")
        await gw.runtime.audit.flush(timeout=10)
        assert await _stored(gw) == ["devices.add", "inference", "inference"]
        assert (await gw.runtime.audit.verify()).ok


async def test_a_journal_left_by_a_process_that_stopped_is_written_at_the_next_start(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    async with FakeOpenAIEngine() as engine, running_gateway(settings) as gw:
        r = await gw.client.post("/api/devices", json={"url": engine.url, "name": "box1"})
        assert r.status_code == 201, r.text
        await gw.runtime.audit.flush(timeout=10)
        await _rename(gw, "audit_log", "audit_log_away")
        for _ in range(3):
            assert (await gw.client.post("/v1/chat/completions", json=CHAT)).status_code == 200
        # The table comes back only once this process is gone (its stop gave up on
        # the database), so what it still held is in its journal alone, as after kill -9.
    engine_ = create_engine(settings.db_url)
    try:
        async with engine_.begin() as conn:
            await conn.execute(text("ALTER TABLE audit_log_away RENAME TO audit_log"))
    finally:
        await close_engine(engine_)
    assert _journaled(settings.home / "audit-journal") == ["inference"] * 3

    async with running_gateway(settings) as gw:
        await gw.runtime.audit.flush(timeout=10)
        assert await _stored(gw) == ["devices.add", "inference", "inference", "inference"]
        assert (await gw.runtime.audit.verify()).ok
    assert _journaled(settings.home / "audit-journal") == []
