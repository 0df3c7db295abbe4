"""Named database operations on the audit log table.

Appending is serialised across every process sharing the database, so that
their entries form one chain: on PostgreSQL by a transaction-scoped advisory
lock, on SQLite by taking the write lock (BEGIN IMMEDIATE) before reading the
chain's head. Reads page by `seq` so no query holds more than one batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.db.models import AuditRow
from sparkplane.security.audit_chain import GENESIS, Entry, StoredEntry, link

# Distinct from the migration lock (db/migrate.py): appenders queue on this one.
_PG_LOCK_KEY = 0x5350_4155
_COLUMNS = (
    AuditRow.seq,
    AuditRow.at,
    AuditRow.action,
    AuditRow.tenant_id,
    AuditRow.key_id,
    AuditRow.data,
    AuditRow.prev_hash,
    AuditRow.hash,
)


def _entry(row: Any) -> StoredEntry:
    return StoredEntry(
        seq=row.seq,
        at=row.at,
        action=row.action,
        tenant_id=row.tenant_id,
        key_id=row.key_id,
        data=row.data if row.data is not None else {},
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class AuditStore:
    """The audit log table."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def append(self, entries: Sequence[Entry]) -> list[StoredEntry]:
        """Chain `entries` after the current head and insert them, in one transaction."""
        if not entries:
            return []
        async with self._sessions() as session:
            await _lock_head(session)
            head = (
                await session.execute(
                    select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)
                )
            ).first()
            last_seq, last_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
            chained = link(entries, last_seq, last_hash)
            await session.execute(
                insert(AuditRow),
                [
                    {
                        "seq": e.seq,
                        "at": e.at,
                        "action": e.action,
                        "tenant_id": e.tenant_id,
                        "key_id": e.key_id,
                        "data": e.data,
                        "prev_hash": e.prev_hash,
                        "hash": e.hash,
                    }
                    for e in chained
                ],
            )
            await session.commit()
        return chained

    async def scan(self, batch: int = 2000, after_seq: int = 0) -> AsyncIterator[list[StoredEntry]]:
        """Every entry after `after_seq` in `seq` order, `batch` at a time."""
        query = select(*_COLUMNS).order_by(AuditRow.seq).limit(batch)
        async for page in self._pages(query, batch, after_seq):
            yield page

    async def between(
        self, since: datetime, until: datetime | None = None, batch: int = 2000
    ) -> AsyncIterator[list[StoredEntry]]:
        """Entries with `since <= at < until`, in `seq` order, `batch` at a time."""
        query = select(*_COLUMNS).where(AuditRow.at >= since)
        if until is not None:
            query = query.where(AuditRow.at < until)
        async for page in self._pages(query.order_by(AuditRow.seq).limit(batch), batch, 0):
            yield page

    async def _pages(
        self, query: Select[Any], batch: int, after_seq: int
    ) -> AsyncIterator[list[StoredEntry]]:
        last = after_seq
        while True:
            async with self._sessions() as session:
                rows = (await session.execute(query.where(AuditRow.seq > last))).all()
            if not rows:
                return
            page = [_entry(r) for r in rows]
            yield page
            if len(page) < batch:
                return
            last = page[-1].seq

    async def count(self, since: datetime | None = None, until: datetime | None = None) -> int:
        """How many entries fall in [since, until)."""
        query = select(func.count()).select_from(AuditRow)
        if since is not None:
            query = query.where(AuditRow.at >= since)
        if until is not None:
            query = query.where(AuditRow.at < until)
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)

    async def search(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
        action: str | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[StoredEntry]:
        """Entries matching every filter given, oldest first.

        With `after_seq` or `since`, the first `limit` entries from there; with
        neither, the newest `limit`. `action` ending in `*` matches a prefix.
        """
        query = select(*_COLUMNS)
        if since is not None:
            query = query.where(AuditRow.at >= since)
        if until is not None:
            query = query.where(AuditRow.at < until)
        if tenant_id is not None:
            query = query.where(AuditRow.tenant_id == tenant_id)
        if action is not None:
            if action.endswith("*"):
                prefix = action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                query = query.where(AuditRow.action.like(prefix + "%", escape="\\"))
            else:
                query = query.where(AuditRow.action == action)
        if after_seq is not None:
            query = query.where(AuditRow.seq > after_seq)
        newest = after_seq is None and since is None
        query = query.order_by(AuditRow.seq.desc() if newest else AuditRow.seq).limit(limit)
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        entries = [_entry(r) for r in rows]
        return entries[::-1] if newest else entries


async def _lock_head(session: AsyncSession) -> None:
    """Hold the right to append until this transaction ends."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    elif dialect == "sqlite":
        # A deferred transaction would read the head, then fail to upgrade to a
        # writer if another process appended meanwhile: take the write lock first.
        await session.execute(text("BEGIN IMMEDIATE"))
