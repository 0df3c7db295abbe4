"""kill -9 with the audit table unreachable, with `sparkplane serve` as a real
process: every answer a client received has its audit entry after the restart
(it was journaled before the answer left), once each, in one verified chain."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from sqlalchemy import text

from sparkplane.db.engine import close_engine, create_engine, session_factory
from sparkplane.security import audit
from sparkplane.security.audit_store import AuditStore
from tests.fakes.openai_engine import FakeOpenAIEngine
from tests.support.serve import serve

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


async def _sql(home: Path, statement: str) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{home / 'sparkplane.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await close_engine(engine)


async def test_answers_received_before_a_kill_9_keep_their_entries(tmp_path: Path) -> None:
    home = tmp_path / "home"
    async with FakeOpenAIEngine() as engine, aiohttp.ClientSession() as session:
        first = await serve(home)
        try:
            body = {"url": engine.url, "name": "box1"}
            async with session.post(first.url + "/api/devices", json=body) as r:
                assert r.status == 201, await r.text()
            await asyncio.sleep(0.5)  # the device's entry reaches the table
            await _sql(home, "ALTER TABLE audit_log RENAME TO audit_log_away")
            answered = 0
            for i in range(20):
                stream = {**CHAT, "stream": i % 2 == 1}
                async with session.post(first.url + "/v1/chat/completions", json=stream) as r:
                    assert r.status == 200, await r.text()
                    await r.read()
                    answered += 1
        finally:
            await first.kill()  # no drain, no flush: only what was journaled survives
        await _sql(home, "ALTER TABLE audit_log_away RENAME TO audit_log")
        second = await serve(home, port=first.port)
        await second.stop()  # its start replayed the journal; its stop stored the rest

    engine_ = create_engine(f"sqlite+aiosqlite:///{home / 'sparkplane.db'}")
    try:
        store = AuditStore(session_factory(engine_))
        actions = [e.action for e in await store.search(limit=1000)]
        report = await audit.verify(store)
    finally:
        await close_engine(engine_)
    assert actions.count("inference") == answered == 20
    assert actions.count("devices.add") == 1
    assert report.ok, report
