"""A migrated database with the audit store on it, for the audit log's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.security.audit_store import AuditStore


@dataclass
class Db:
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    store: AuditStore


@asynccontextmanager
async def audit_db(url: str) -> AsyncIterator[Db]:
    """The database at `url`, migrated, closed again on the way out."""
    engine = create_engine(url)
    await migrate.upgrade(engine)
    sessions = session_factory(engine)
    try:
        yield Db(url, engine, sessions, AuditStore(sessions))
    finally:
        await engine.dispose()
