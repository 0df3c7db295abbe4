"""Migration 0003_jobs applies and reverts on SQLite and PostgreSQL, and the tables it
makes match the models."""

from __future__ import annotations

from sqlalchemy import inspect

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine
from sparkplane.db.models import Base

TABLES = {"jobs", "job_attempts", "uploads", "artifacts"}


async def test_migration_up_down_up_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            columns = await conn.run_sync(
                lambda c: {t: {col["name"] for col in inspect(c).get_columns(t)} for t in TABLES}
            )
        assert found >= TABLES
        for table in TABLES:
            assert columns[table] == set(Base.metadata.tables[table].columns.keys()), table
        await migrate.downgrade(engine, "0002")
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert not found & TABLES
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
