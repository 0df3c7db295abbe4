"""Audit log: the cost of `record()` on the request path, the background
writer's throughput, and the time to verify the whole chain.

Writes N inference entries (default 100,000) through `AuditLog` into a fresh
SQLite file (and into `--database-url`, e.g. an empty PostgreSQL database),
then times `verify` in process and `sparkplane audit verify` as a subprocess.
Usage:

    python bench/audit_verify.py [--entries 100000] [--database-url postgresql+asyncpg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.security.audit import AuditLog
from sparkplane.security.audit_events import InferenceEvent
from sparkplane.security.audit_store import AuditStore

SPARKPLANE = str(Path(sys.executable).parent / "sparkplane")


def event(i: int) -> InferenceEvent:
    return InferenceEvent(
        tenant_id="5f0c1e7a9b2d4c6e8f0a1b3c5d7e9f01",
        key_id="a1b2c3d4e5f6",
        model="llama-3.1-8b-instruct",
        op="chat",
        status=200,
        device="spark",
        stream=i % 2 == 0,
        tokens_in=100 + i % 900,
        tokens_out=20 + i % 300,
        attempts=1,
        duration_ms=850.25 + i % 1000,
        ttfb_ms=42.5,
    )


async def fill_and_verify(url: str, entries: int) -> dict[str, float]:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        store = AuditStore(session_factory(engine))
        if await store.count():
            raise SystemExit(f"{url}: the audit log is not empty; give an empty database")
        audit = AuditLog(store, max_backlog=entries + 1)
        events = [event(i) for i in range(entries)]
        started = time.perf_counter()
        for e in events:
            audit.record(e)
        record_s = time.perf_counter() - started
        started = time.perf_counter()
        await audit.flush()
        write_s = time.perf_counter() - started
        started = time.perf_counter()
        report = await audit.verify()
        verify_s = time.perf_counter() - started
        if not report.ok or report.checked != entries:
            raise SystemExit(f"verify failed: {report}")
    finally:
        await engine.dispose()
    return {"record_us": record_s / entries * 1e6, "write_s": write_s, "verify_s": verify_s}


def cli_verify(url: str) -> float:
    """Seconds `sparkplane audit verify` takes, start-up included."""
    started = time.perf_counter()
    env = {**os.environ, "SPARKPLANE_DATABASE_URL": url}
    done = subprocess.run(
        [SPARKPLANE, "audit", "verify"], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"sparkplane audit verify failed: {done.stdout}{done.stderr}")
    return time.perf_counter() - started


def run(name: str, url: str, entries: int) -> None:
    r = asyncio.run(fill_and_verify(url, entries))
    cli_s = cli_verify(url)
    print(
        f"{name:<10} {entries:>8,} | record {r['record_us']:5.2f} us/entry"
        f" | write {r['write_s']:6.2f} s ({entries / r['write_s']:>7,.0f}/s)"
        f" | verify {r['verify_s']:5.2f} s ({entries / r['verify_s']:>7,.0f}/s)"
        f" | `sparkplane audit verify` {cli_s:5.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--database-url", help="also run on this (empty) database")
    args = parser.parse_args()
    print(f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        run("SQLite", url, args.entries)
    if args.database_url:
        run(args.database_url.split(":", 1)[0].split("+")[0], args.database_url, args.entries)


if __name__ == "__main__":
    main()
