"""`sparkplane audit`: verify the audit log's hash chain (against a head kept
elsewhere, too), sign its head, and export and list its entries.

They read the database directly, so they work whether or not a server runs.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from sparkplane.cli.common import (
    ConfigOption,
    console,
    database,
    err_console,
    fail,
    run,
    settings_from,
)
from sparkplane.config import Settings
from sparkplane.db.engine import session_factory
from sparkplane.errors import NotFound
from sparkplane.security import audit
from sparkplane.security.audit_chain import StoredEntry, VerifyReport, timestamp
from sparkplane.security.audit_head import (
    HeadError,
    check,
    load_private_key,
    load_public_key,
    sign,
)
from sparkplane.security.audit_store import AuditStore
from sparkplane.security.store import TenantStore

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
_HASH = re.compile(r"^[0-9a-fA-F]{64}$")


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 date or time; without a zone it is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 date or time: {value!r}") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        help="Only this tenant's entries (name or id), as its own chain numbers them.",
    ),
]


async def _tenant_id(engine: AsyncEngine, tenant: str | None) -> str | None:
    """The id of `tenant` (a name, or the id of a tenant that may no longer exist)."""
    if tenant is None:
        return None
    try:
        return (await TenantStore(session_factory(engine)).get(tenant)).id
    except NotFound:
        return tenant


def _expected_head(value: str | None, settings: Settings) -> str | None:
    """The head hash `--expect-head` names: a hash, or a file `audit head` wrote
    (its signature checked with `audit_head_key` or `audit_head_secret`)."""
    if value is None or _HASH.match(value):
        return value
    try:
        doc = json.loads(Path(value).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"--expect-head is neither a 64-hex hash nor a readable head file: {exc}")
    try:
        key = settings.audit_head_key
        public = load_public_key(key) if key is not None else None
        return check(doc, settings.audit_head_secret, public)
    except HeadError as exc:
        fail(f"the head in {value}: {exc}")


@app.command("verify")
def verify(
    tenant: TenantOption = None,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            metavar="HASH|FILE",
            help="A head kept off the box (its hash, or a file from `audit head`): the "
            "chain must still hold that entry, so cut-off or rewritten entries fail.",
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check every entry's hash and link; exit 1 naming the first broken entry.

    With --tenant, check that tenant's own chain instead (its entries only).
    """
    settings = settings_from(config)
    expected = _expected_head(expect_head, settings)

    async def go() -> VerifyReport:
        async with database(settings) as engine:
            store = AuditStore(session_factory(engine))
            tenant_id = await _tenant_id(engine, tenant)
            if tenant_id is not None:
                return await audit.verify_tenant(store, tenant_id, expect_head=expected)
            return await audit.verify(store, expect_head=expected)

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


@app.command("list")
def list_entries(
    failed: Annotated[
        bool,
        typer.Option(
            "--failed",
            help="Only failed authentications and refused permissions (`auth.failed`).",
        ),
    ] = False,
    action: Annotated[
        str | None,
        typer.Option(help="Only this action (`keys.*` for a prefix)."),
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(parser=parse_time, metavar="WHEN", help="Entries at or after this time."),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(parser=parse_time, metavar="WHEN", help="Entries before this time."),
    ] = None,
    tenant: TenantOption = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON Lines.")] = False,
    config: ConfigOption = None,
) -> None:
    """Show entries, oldest first: the newest `--limit` of them, or from `--since` on."""
    settings = settings_from(config)
    if failed:
        action = "auth.failed"

    async def go() -> list[StoredEntry]:
        async with database(settings) as engine:
            store = AuditStore(session_factory(engine))
            tenant_id = await _tenant_id(engine, tenant)
            return await store.search(
                since=since,
                until=until,
                tenant_id=tenant_id,
                action=action,
                limit=limit,
                tenant_chain=tenant_id is not None,
            )

    entries = run(go())
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry.public(), ensure_ascii=False, separators=(",", ":")))
        return
    table = Table("seq", "at", "action", "key", "details", box=None)
    for entry in entries:
        table.add_row(
            str(entry.seq),
            timestamp(entry.at)[:19].replace("T", " "),
            entry.action,
            entry.key_id or "-",
            _details(entry.data),
        )
    console.print(table)
    if not entries:
        console.print("no entries", style="dim")


def _details(data: dict[str, Any]) -> str:
    """An entry's data on one line (the failure's fields first, when it is one)."""
    if "reason" in data and "client" in data:
        status, reason, client = data.get("status"), data.get("reason"), data.get("client")
        return f"{status} {reason} from {client} {data.get('path')}"
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 120 else text[:119] + "…"


@app.command("head")
def head(
    tenant: TenantOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", dir_okay=False, help="Write to this file instead of stdout."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print the chain's head (seq and hash) as JSON, signed with `audit_head_key`
    (Ed25519) or `audit_head_secret` (HMAC-SHA256).

    The chain is verified first (exit 1 if broken). Keep the output off the box
    and check against it later: `sparkplane audit verify --expect-head FILE`.
    """
    settings = settings_from(config)

    async def go() -> tuple[VerifyReport, str | None]:
        async with database(settings) as engine:
            store = AuditStore(session_factory(engine))
            tenant_id = await _tenant_id(engine, tenant)
            if tenant_id is not None:
                return await audit.verify_tenant(store, tenant_id), tenant_id
            return await audit.verify(store), None

    try:
        key = load_private_key(settings.audit_head_key) if settings.audit_head_key else None
    except HeadError as exc:
        fail(str(exc))
    report, tenant_id = run(go())
    if not report.ok:
        fail(f"the chain is broken, no head to sign: {report.reason}")
    if key is None and not settings.audit_head_secret:
        err_console.print(
            "[yellow]warning:[/yellow] neither audit_head_key nor audit_head_secret is set: "
            "the head is unsigned",
            highlight=False,
        )
    doc = sign(report.head_seq, report.head_hash, settings.audit_head_secret, tenant_id, key)
    text = json.dumps(doc, separators=(",", ":"))
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        console.print(f"head seq {report.head_seq} written to {output}", highlight=False)


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
    tenant: TenantOption = None,
    config: ConfigOption = None,
) -> None:
    """Write entries as JSON Lines, oldest first, with their hashes.

    With --tenant, only that tenant's entries, numbered and linked as its own chain,
    so the file can be handed to the tenant and re-checked without anyone else's.
    """
    settings = settings_from(config)

    async def go(out: TextIO, progress: Progress | None) -> int:
        async with database(settings) as engine:
            store = AuditStore(session_factory(engine))
            tenant_id = await _tenant_id(engine, tenant)
            task = None
            if progress is not None:
                total = await store.count(since, until, tenant_id)
                task = progress.add_task("exporting", total=total)
            written = 0
            async for entry in audit.export(store, since, until, tenant_id=tenant_id):
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
