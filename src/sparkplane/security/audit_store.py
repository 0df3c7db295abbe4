"""Named database operations on the audit log table.

Appending is serialised across every process sharing the database, so that
their entries form one chain: on PostgreSQL by a transaction-scoped advisory
lock, on SQLite by taking the write lock (BEGIN IMMEDIATE) before reading the
chain's head. Reads page by `seq` so no query holds more than one batch.

Each batch is also chained into the chains of the tenants its entries concern:
under the same lock, one query reads the heads of those tenants' chains.
Reading a tenant's chain pages by `tenant_seq` on the (tenant_id, tenant_seq)
index, never touching other tenants' rows.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, String, Text, and_, func, select, text, type_coerce
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
    AuditRow.tenant_seq,
    AuditRow.tenant_prev_hash,
    AuditRow.tenant_hash,
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
    seq, at, action, tenant_id, key_id, data, prev_hash, hash_, t_seq, t_prev, t_hash = row
    at, data = _at(at), _data(data)
    return StoredEntry(
        seq, at, action, tenant_id, key_id, data, prev_hash, hash_, t_seq, t_prev, t_hash
    )


class AuditStore:
    """The audit log table."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def append(self, entries: Sequence[Entry]) -> list[StoredEntry]:
        """Chain `entries` after the current head and insert them, in one transaction.

        Entries whose `entry_id` is already stored are skipped (idempotent: a batch
        retried after a lost commit acknowledgement is stored once); returns those
        inserted.
        """
        if not entries:
            return []
        async with self._sessions() as session:
            await _lock_head(session)
            entries = await _not_stored(session, entries)
            if not entries:
                await session.commit()
                return []
            head = (
                await session.execute(
                    select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)
                )
            ).first()
            last_seq, last_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
            tenants = {e.tenant_id for e in entries if e.tenant_id is not None}
            heads = await _tenant_heads(session, tenants)
            chained = link(entries, last_seq, last_hash, heads)
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
                        "tenant_seq": e.tenant_seq,
                        "tenant_prev_hash": e.tenant_prev_hash,
                        "tenant_hash": e.tenant_hash,
                        "entry_id": source.entry_id,
                    }
                    for e, source in zip(chained, entries, strict=True)
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

    async def scan_tenant(
        self, tenant_id: str, batch: int = 2000
    ) -> AsyncGenerator[list[StoredEntry], None]:
        """Every entry of `tenant_id`'s chain in `tenant_seq` order, `batch` at a time."""
        async for page in self._pages([AuditRow.tenant_id == tenant_id], batch, 0, by_tenant=True):
            yield page

    async def between(
        self,
        since: datetime,
        until: datetime | None = None,
        batch: int = 2000,
        tenant_id: str | None = None,
    ) -> AsyncGenerator[list[StoredEntry], None]:
        """Entries with `since <= at < until`, in `seq` order, `batch` at a time; with
        `tenant_id`, only that tenant's, in its chain's order."""
        conditions = [AuditRow.at >= since]
        if until is not None:
            conditions.append(AuditRow.at < until)
        if tenant_id is not None:
            conditions.append(AuditRow.tenant_id == tenant_id)
        async for page in self._pages(conditions, batch, 0, by_tenant=tenant_id is not None):
            yield page

    async def _pages(
        self,
        conditions: list[ColumnElement[bool]],
        batch: int,
        after_seq: int,
        *,
        by_tenant: bool = False,
    ) -> AsyncGenerator[list[StoredEntry], None]:
        # Keyset paging: each page is a short query on the primary key (or, within
        # one tenant, on the tenant chain's index).
        order = AuditRow.tenant_seq if by_tenant else AuditRow.seq
        last = after_seq
        while True:
            query = select(*_COLUMNS).where(*conditions, order > last).order_by(order).limit(batch)
            async with self._sessions() as session:
                rows = (await session.execute(query)).all()
            if not rows:
                return
            page = [_entry(r) for r in rows]
            yield page
            if len(page) < batch:
                return
            last = (page[-1].tenant_seq or 0) if by_tenant else page[-1].seq

    async def count(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: str | None = None,
    ) -> int:
        """How many entries fall in [since, until) (only `tenant_id`'s when given)."""
        query = select(func.count()).select_from(AuditRow)
        if tenant_id is not None:
            query = query.where(AuditRow.tenant_id == tenant_id)
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
        tenant_chain: bool = False,
    ) -> list[StoredEntry]:
        """Entries matching every filter given, oldest first.

        With `after_seq` or `since`, the first `limit` entries from there; with
        neither, the newest `limit`. `action` ending in `*` matches a prefix.
        With `tenant_chain` (and `tenant_id`), entries are ordered and `after_seq`
        counted in that tenant's own chain.
        """
        order = AuditRow.tenant_seq if tenant_chain and tenant_id is not None else AuditRow.seq
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
            query = query.where(order > after_seq)
        newest = after_seq is None and since is None
        query = query.order_by(order.desc() if newest else order).limit(limit)
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        entries = [_entry(r) for r in rows]
        return entries[::-1] if newest else entries


async def _not_stored(session: AsyncSession, entries: Sequence[Entry]) -> Sequence[Entry]:
    """`entries` less those whose id is already in the table (read under the append lock)
    and less repeats within the batch (a job reported twice while both wait), first kept."""
    ids = [e.entry_id for e in entries if e.entry_id is not None]
    if not ids:
        return entries
    seen = set(await session.scalars(select(AuditRow.entry_id).where(AuditRow.entry_id.in_(ids))))
    if not seen and len(set(ids)) == len(ids):
        return entries
    fresh: list[Entry] = []
    for e in entries:
        if e.entry_id is not None:
            if e.entry_id in seen:
                continue
            seen.add(e.entry_id)
        fresh.append(e)
    return fresh


async def _tenant_heads(session: AsyncSession, tenants: set[str]) -> dict[str, tuple[int, str]]:
    """The last (tenant_seq, tenant_hash) of each tenant's chain; absent for a new chain."""
    if not tenants:
        return {}
    last = (
        select(AuditRow.tenant_id, func.max(AuditRow.tenant_seq).label("top"))
        .where(AuditRow.tenant_id.in_(sorted(tenants)))
        .group_by(AuditRow.tenant_id)
        .subquery()
    )
    rows = await session.execute(
        select(AuditRow.tenant_id, AuditRow.tenant_seq, AuditRow.tenant_hash).join(
            last, and_(AuditRow.tenant_id == last.c.tenant_id, AuditRow.tenant_seq == last.c.top)
        )
    )
    # A head whose hash was blanked still links by it, so the break shows when verified.
    return {t: (seq, digest or "") for t, seq, digest in rows.all() if t and seq is not None}


async def _lock_head(session: AsyncSession) -> None:
    """Hold the right to append until this transaction ends."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    elif dialect == "sqlite":
        # A deferred transaction would read the head, then fail to upgrade to a
        # writer if another process appended meanwhile: take the write lock first.
        await session.execute(text("BEGIN IMMEDIATE"))
