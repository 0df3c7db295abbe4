"""Migration 0006_nodes applies and reverts on SQLite and PostgreSQL, and the tables
it makes (and the column it adds to usage_records) match the models."""

from __future__ import annotations

from sqlalchemy import inspect

from sparkplane.db import migrate, nodes
from sparkplane.db.engine import create_engine
from sparkplane.db.models import Base

# Importing the module registers its tables on the shared metadata.
assert nodes.NodeRow.__tablename__ == "nodes"
TABLES = {"join_tokens", "nodes", "deployments", "usage_records"}


async def test_migration_up_down_up_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda c: {t: {col["name"] for col in inspect(c).get_columns(t)} for t in TABLES}
            )
        for table in TABLES:
            assert columns[table] == set(Base.metadata.tables[table].columns.keys()), table
        await migrate.downgrade(engine, "0005_tenant_scopes")
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            usage = await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("usage_records")}
            )
        assert not found & {"join_tokens", "nodes", "deployments"}
        assert "energy_source" not in usage
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()
