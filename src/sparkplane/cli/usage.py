"""`sparkplane usage`: metered usage and its cost, read from the database."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from sparkplane.cli.common import ConfigOption, console, database, run, settings_from
from sparkplane.db.engine import session_factory
from sparkplane.security.store import TenantStore
from sparkplane.usage.formats import to_csv, to_json, to_tables
from sparkplane.usage.report import Report, month_report
from sparkplane.usage.store import current_month, month_bounds

app = typer.Typer(help="Usage: tokens, images, device time, energy and cost.", no_args_is_help=True)


class Format(StrEnum):
    """How `usage report` prints."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


@app.command("report")
def report(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Tenant name (default: every tenant).")
    ] = None,
    month: Annotated[
        str | None, typer.Option("--month", help="Month as YYYY-MM, UTC (default: this month).")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.TABLE,
    config: ConfigOption = None,
) -> None:
    """A month's requests, tokens, images, device-hours, energy and cost per tenant."""
    settings = settings_from(config)
    chosen = month or current_month()

    async def go() -> Report:
        month_bounds(chosen)
        async with database(settings) as engine:
            sessions = session_factory(engine)
            record = await TenantStore(sessions).get(tenant) if tenant is not None else None
            return await month_report(sessions, chosen, record)

    result = run(go())
    if fmt is Format.JSON:
        typer.echo(to_json(result))
    elif fmt is Format.CSV:
        typer.echo(to_csv(result), nl=False)
    elif not result.tenants:
        console.print(f"no usage in {result.month}")
    else:
        for table in to_tables(result):
            console.print(table)
