"""Creating the async database engine for SQLite (default) or PostgreSQL."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Table, event, insert
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def is_sqlite(url: str) -> bool:
    """Whether the URL names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str) -> AsyncEngine:
    """An async engine with the settings each backend needs for a server.

    SQLite runs in WAL mode with a busy timeout so the health loop, the API and
    the CLI can share the file; its parent folder is created if missing.
    """
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"timeout": 30}}
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


async def close_engine(engine: AsyncEngine, wait_s: float = 5.0) -> None:
    """Close the engine's connections once the work using them has ended.

    `dispose()` closes only the connections in the pool: one still in use (a
    shielded write finishing after its task was cancelled, a key lookup shared
    by requests that left) goes back to the discarded pool when its work ends
    and is never closed; aiosqlite then leaks a thread until the garbage
    collector finds it. So wait up to `wait_s` for them to come back first.
    """
    pool = engine.sync_engine.pool
    checkedout = getattr(pool, "checkedout", None)
    if checkedout is not None and checkedout() > 0:
        returned = asyncio.Event()

        def listener(*_: object) -> None:
            returned.set()

        event.listen(pool, "checkin", listener)
        try:
            async with asyncio.timeout(wait_s):
                while checkedout() > 0:
                    returned.clear()
                    await returned.wait()
        except TimeoutError:
            structlog.get_logger("sparkplane.db").warning(
                "connections_in_use", action="db.close", connections=checkedout()
            )
        finally:
            event.remove(pool, "checkin", listener)
    await engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


# SQLite allows 32,766 bound values per statement (3.32+); stay well below.
_SQLITE_MAX_VALUES = 30_000


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows (all with the same keys) in as few statements as possible.

    On SQLite, one multi-row INSERT per chunk, written out directly: its driver
    runs in a thread and gives up the GIL around every row of an executemany, so
    under a busy event loop a 500-row batch took seconds (a GIL convoy), and
    SQLAlchemy's compiler spent a quarter of the process on multi-row VALUES
    clauses. Values still go through each column type's own bind processing.
    PostgreSQL's driver pipelines an executemany natively.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name != "sqlite":
        await session.execute(insert(table), list(rows))
        return
    columns = tuple(rows[0])
    processors = _processors(table, columns, dialect)
    per_statement = max(1, _SQLITE_MAX_VALUES // len(columns))
    connection = await session.connection()
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        values: list[Any] = []
        for row in chunk:
            for name, process in zip(columns, processors, strict=True):
                value = row[name]
                values.append(value if process is None or value is None else process(value))
        sql = _values_sql(table.name, columns, len(chunk))
        await connection.exec_driver_sql(sql, tuple(values))


@functools.lru_cache(maxsize=64)
def _values_sql(table: str, columns: tuple[str, ...], count: int) -> str:
    one = "(" + ", ".join("?" * len(columns)) + ")"
    names = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({names}) VALUES ' + ", ".join([one] * count)


@functools.lru_cache(maxsize=64)
def _processors(table: Table, columns: tuple[str, ...], dialect: Dialect) -> list[Any]:
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]
