"""`sparkplane db`: schema migrations (`current` only reads: it never creates a database)."""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy import make_url

from sparkplane.cli.common import ConfigOption, console, database, run, settings_from
from sparkplane.db import migrate
from sparkplane.db.engine import close_engine, create_engine

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command()
def upgrade(config: ConfigOption = None) -> None:
    """Apply every pending migration."""
    settings = settings_from(config)

    async def go() -> str | None:
        async with database(settings) as engine:
            return await migrate.current_revision(engine)

    console.print(f"database at revision {run(go())} (head {migrate.head_revision()})")


@app.command()
def current(config: ConfigOption = None) -> None:
    """Show the schema revision without changing anything (nor creating a database)."""
    settings = settings_from(config)
    missing = _missing_sqlite_file(settings.db_url)
    if missing is not None:
        # Opening it would create the file (and its folder): say so instead.
        console.print(
            f"database at revision None (head {migrate.head_revision()}): "
            f"no database file at {missing} yet (`sparkplane db upgrade` creates it)",
            highlight=False,
            soft_wrap=True,
        )
        return

    async def go() -> str | None:
        engine = create_engine(settings.db_url)
        try:
            return await migrate.current_revision(engine)
        finally:
            await close_engine(engine)

    console.print(f"database at revision {run(go())} (head {migrate.head_revision()})")


def _missing_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL when it does not exist yet; None otherwise."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    path = Path(database)
    return None if path.exists() else path
