"""`sparkplane db`: schema migrations."""

from __future__ import annotations

import typer

from sparkplane.cli.common import ConfigOption, console, database, run, settings_from
from sparkplane.db import migrate

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
    """Show the schema revision without changing anything."""
    settings = settings_from(config)

    async def go() -> str | None:
        from sparkplane.db.engine import create_engine

        engine = create_engine(settings.db_url)
        try:
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    console.print(f"database at revision {run(go())} (head {migrate.head_revision()})")
