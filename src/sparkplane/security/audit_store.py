"""Named database operations on the audit log table.

Appending is serialised across every process sharing the database, so that
their entries form one chain: on PostgreSQL by a transaction-scoped advisory
lock, on SQLite by taking the write lock (BEGIN IMMEDIATE) before reading the
chain's head. Reads page by `seq` so no query holds more than one batch.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, String, Text, func, select, text, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.db.engine import insert_rows
from sparkplane.db.models import AuditRow
from sparkplane.security.audit_chain import GENESIS, Entry, StoredEntry, link

# Distinct from the migration lock (db/migrate.py): appenders queue on this one.
_PG_LOCK_KEY = 0x5350_4155
# Inserted as a table (Core), not through the ORM's bulk path: cheaper per entry.
_TABLE = AuditRow.metadata.tables["audit_log"]
# Read `at` and `data` as the driver hands them over and convert here: the
# generic column types cost more than hashing when verifying a long chain.
_COLUMNS = (
    AuditRow.seq,
    type_coerce(AuditRow.at, String),
    AuditRow.action,
    AuditRow.tenant_id,
    AuditRow.key_id,
    type_coerce(AuditRow.data, Text),
    AuditRow.prev_hash,
    AuditRow.hash,
)


# Stands for a stored value that cannot be read: it never matches an entry's hash.
_UNREADABLE = datetime.min.replace(tzinfo=UTC)


def _at(value: datetime | str) -> datetime:
    # SQLite hands back its stored text (UTC, no zone), PostgreSQL a datetime.
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return _UNREADABLE
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _data(value: Any) -> Any:
    # SQLite hands back JSON text (which an edit may have broken); asyncpg decodes it.
    if not isinstance(value, str | bytes):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return {"unreadable": str(value)[:200]}


def _entry(row: Any) -> StoredEntry:
    seq, at, action, tenant_id, key_id, data, prev_hash, hash_ = row
    return StoredEntry(seq, _at(at), action, tenant_id, key_id, _data(data), prev_hash, hash_)


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
            await insert_rows(
                session,
                _TABLE,
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

    async def scan(
        self, batch: int = 2000, after_seq: int = 0
    ) -> AsyncGenerator[list[StoredEntry], None]:
        """Every entry after `after_seq` in `seq` order, `batch` at a time."""
        async for page in self._pages([], batch, after_seq):
            yield page

    async def between(
        self, since: datetime, until: datetime | None = None, batch: int = 2000
    ) -> AsyncGenerator[list[StoredEntry], None]:
        """Entries with `since <= at < until`, in `seq` order, `batch` at a time."""
        conditions = [AuditRow.at >= since]
        if until is not None:
            conditions.append(AuditRow.at < until)
        async for page in self._pages(conditions, batch, 0):
            yield page

    async def _pages(
        self, conditions: list[ColumnElement[bool]], batch: int, after_seq: int
    ) -> AsyncGenerator[list[StoredEntry], None]:
        # Keyset paging: each page is a short query on the primary key.
        last = after_seq
        while True:
            query = (
                select(*_COLUMNS)
                .where(*conditions, AuditRow.seq > last)
                .order_by(AuditRow.seq)
                .limit(batch)
            )
            async with self._sessions() as session:
                rows = (await session.execute(query)).all()
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
