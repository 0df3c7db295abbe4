"""Helpers shared by the CLI commands: settings, async running, errors."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from sparkplane.config import Settings, SettingsFileError, load_settings
from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.errors import SparkplaneError
from sparkplane.security.audit import AuditLog
from sparkplane.security.audit_events import AdminEvent
from sparkplane.security.audit_store import AuditStore
from sparkplane.security.keys import redact
from sparkplane.security.tenancy import TenantRecord

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML settings file (default ./sparkplane.toml).", dir_okay=False
    ),
]

console = Console()
err_console = Console(stderr=True)


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    """Load settings or exit with a readable message."""
    try:
        return load_settings(config, **overrides)
    except FileNotFoundError as exc:
        fail(str(exc))
    except SettingsFileError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read settings: {exc}")
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        fail("invalid settings:\n" + "\n".join(lines))


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error and exit non-zero."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; sparkplane errors become a message and exit code 1."""
    try:
        return asyncio.run(coro)
    except SparkplaneError as exc:
        fail(exc.message)
    except (SQLAlchemyError, OSError) as exc:
        # Unreachable or unusable database (refused, wrong credentials, bad path).
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
        fail(f"cannot use the database: {redact(reason)}")


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the configured database, migrated to the current schema."""
    engine = create_engine(settings.db_url)
    try:
        await migrate.upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


async def audit_admin(
    engine: AsyncEngine,
    action: str,
    target: str,
    *,
    concerns: TenantRecord | None = None,
    **details: Any,
) -> None:
    """Append a change made from the command line to the audit log, and wait for it:
    in the chain of the tenant it `concerns`, when it concerns one."""
    if concerns is not None:
        details = {"tenant": concerns.name, **details}
    log = AuditLog(AuditStore(session_factory(engine)))
    await log.start()
    try:
        log.record(
            AdminEvent(
                action=action,
                tenant_id=concerns.id if concerns is not None else None,
                key_id=None,
                target=target,
                details={"via": "cli", "user": getpass.getuser(), **details},
            )
        )
    finally:
        await log.stop()
