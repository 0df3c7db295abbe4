"""Bulk inserts read back exactly as the ORM writes them, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, insert_rows, session_factory
from sparkplane.db.models import AuditRow, UsageRow


async def test_bulk_rows_equal_orm_rows(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    sessions = session_factory(engine)
    at = datetime(2026, 11, 24, 12, 30, 1, 123456, tzinfo=UTC)
    rows = [
        {
            "seq": i,
            "at": at,
            "action": "inference",
            "tenant_id": None if i % 2 else f"t{i}",
            "key_id": "k",
            "data": {"n": i, "nested": {"ok": True, "none": None}, "text": "é \u2603"},
            "prev_hash": "0" * 64,
            "hash": f"{i:064d}",
        }
        for i in range(1, 1201)  # more than one SQLite statement's worth
    ]
    async with sessions() as session:
        await insert_rows(session, AuditRow.__table__, rows)  # type: ignore[arg-type]
        await session.commit()
    async with sessions() as session:
        stored = list(await session.scalars(select(AuditRow).order_by(AuditRow.seq)))
        usage = {"at": at, "kind": "chat", "model": "m", "status": 200, "estimated": True}
        await insert_rows(session, UsageRow.__table__, [usage])  # type: ignore[arg-type]
        await session.commit()
        back = (await session.scalars(select(UsageRow))).one()
    await engine.dispose()
    assert len(stored) == 1200
    for row, want in zip(stored, rows, strict=True):
        assert row.at == at
        assert row.data == want["data"]
        assert row.tenant_id == want["tenant_id"]
        assert row.hash == want["hash"]
    assert back.estimated is True
    assert back.at == at
