"""`sparkplane audit`: verify the audit log's hash chain and export its entries.

Both read the database directly, so they work whether or not a server runs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sparkplane.cli.common import ConfigOption, console, database, err_console, run, settings_from
from sparkplane.db.engine import session_factory
from sparkplane.security import audit
from sparkplane.security.audit_chain import VerifyReport
from sparkplane.security.audit_store import AuditStore

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 date or time; without a zone it is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 date or time: {value!r}") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@app.command("verify")
def verify(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check every entry's hash and link; exit 1 naming the first broken entry."""
    settings = settings_from(config)

    async def go() -> VerifyReport:
        async with database(settings) as engine:
            return await audit.verify(AuditStore(session_factory(engine)))

    started = time.perf_counter()
    report = run(go())
    elapsed = time.perf_counter() - started
    if as_json:
        typer.echo(json.dumps(report.public()))
    elif report.ok:
        console.print(
            f"[green]OK[/green]: {report.checked:,} entries checked in {elapsed:.2f} s",
            highlight=False,
        )
        if report.checked:
            console.print(f"head: seq {report.head_seq} hash {report.head_hash}", soft_wrap=True)
    else:
        err_console.print(f"[red]BROKEN[/red]: {report.reason}", highlight=False, soft_wrap=True)
        err_console.print(
            f"{report.checked:,} entries read; the chain holds up to seq {report.head_seq}",
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command("export")
def export(
    since: Annotated[
        datetime,
        typer.Option(
            parser=parse_time,
            metavar="WHEN",
            help="Entries at or after this date or time (ISO 8601, UTC unless a zone is given).",
        ),
    ],
    until: Annotated[
        datetime | None,
        typer.Option(parser=parse_time, metavar="WHEN", help="Entries before this date or time."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", dir_okay=False, help="Write to this file instead of stdout."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write entries as JSON Lines, oldest first, with their hashes."""
    settings = settings_from(config)

    async def go(out: TextIO, progress: Progress | None) -> int:
        async with database(settings) as engine:
            store = AuditStore(session_factory(engine))
            task = None
            if progress is not None:
                task = progress.add_task("exporting", total=await store.count(since, until))
            written = 0
            async for entry in audit.export(store, since, until):
                out.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
                written += 1
                if task is not None and progress is not None and written % 500 == 0:
                    progress.update(task, completed=written)
            if task is not None and progress is not None:
                progress.update(task, completed=written)
            return written

    if output is None:
        run(go(sys.stdout, None))
        return
    with output.open("w", encoding="utf-8") as out, _progress() as progress:
        written = run(go(out, progress))
    console.print(f"exported {written:,} entries to {output}", highlight=False)


@contextmanager
def _progress() -> Iterator[Progress]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    with progress:
        yield progress
