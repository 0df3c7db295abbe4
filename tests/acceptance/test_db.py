"""`sparkplane db upgrade` and `db current` on SQLite (the default) and PostgreSQL."""

from __future__ import annotations

import asyncpg
import pytest

from sparkplane.db import migrate
from tests.support.cli import Cli
from tests.support.services import fresh_postgres_database


async def test_upgrade_on_a_fresh_home_creates_the_database_at_head(cli: Cli) -> None:
    head = migrate.head_revision()
    assert head
    before = await cli("db", "current")
    assert before.code == 0, before
    assert f"database at revision None (head {head})" in before.stdout
    # Looking does not create: no database file, not even the home folder.
    assert not cli.home.exists()
    assert "no database file" in before.stdout

    upgraded = await cli("db", "upgrade")
    assert upgraded.code == 0, upgraded
    assert f"database at revision {head} (head {head})" in upgraded.stdout
    assert (cli.home / "sparkplane.db").is_file()

    current = await cli("db", "current")
    assert current.code == 0, current
    assert f"database at revision {head} (head {head})" in current.stdout
    # Upgrading again is a no-op, not an error.
    assert (await cli("db", "upgrade")).code == 0


@pytest.mark.postgres
async def test_upgrade_on_postgresql_creates_the_tables_at_head(cli: Cli) -> None:
    head = migrate.head_revision()
    async with fresh_postgres_database() as url:
        cli.settings["DATABASE_URL"] = url
        upgraded = await cli("db", "upgrade")
        assert upgraded.code == 0, upgraded
        assert f"database at revision {head} (head {head})" in upgraded.stdout
        current = await cli("db", "current")
        assert f"database at revision {head} (head {head})" in current.stdout

        database = url.rsplit("/", 1)[1]
        conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database=database)
        try:
            assert await conn.fetchval("SELECT version_num FROM alembic_version") == head
            assert await conn.fetchval("SELECT count(*) FROM devices") == 0
        finally:
            await conn.close()
    assert not (cli.home / "sparkplane.db").exists()


async def test_an_unreachable_database_is_a_clear_error(cli: Cli) -> None:
    cli.settings["DATABASE_URL"] = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    result = await cli("db", "upgrade")
    assert result.code != 0, result
    assert "Traceback" not in result.output, result
    assert "error: cannot use the database" in result.stderr
