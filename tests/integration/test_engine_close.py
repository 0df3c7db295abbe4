"""Closing the database engine at shutdown while a write is still finishing."""

from __future__ import annotations

import asyncio
import gc

from sqlalchemy import text

from sparkplane.db.engine import close_engine, create_engine, session_factory


async def test_a_write_in_flight_finishes_and_its_connection_is_closed(database_url: str) -> None:
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS notes (n INTEGER)"))
    sessions = session_factory(engine)
    started = asyncio.Event()

    async def write() -> None:
        async with sessions.begin() as session:
            started.set()
            for n in range(50):
                await session.execute(text("INSERT INTO notes (n) VALUES (:n)"), {"n": n})

    # As a shielded requeue or a shared key lookup outlives the task that began it.
    in_flight = asyncio.ensure_future(write())
    await started.wait()
    await close_engine(engine)
    await in_flight
    # A connection left open would be found here and, with warnings as errors,
    # fail this test (ResourceWarning from aiosqlite) instead of a later one.
    gc.collect()
    check = create_engine(database_url)
    try:
        async with check.connect() as conn:
            assert (await conn.execute(text("SELECT COUNT(*) FROM notes"))).scalar() == 50
    finally:
        await check.dispose()
