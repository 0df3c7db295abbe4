"""`sparkplane audit verify` and `sparkplane audit export` run as a user runs them:
a subprocess on a database that a writer filled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.db.models import AuditRow
from sparkplane.security.audit import AuditLog
from sparkplane.security.audit_events import InferenceEvent
from sparkplane.security.audit_store import AuditStore

SPARKPLANE = str(Path(sys.executable).parent / "sparkplane")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def cli(
    tmp_path: Path, url: str, *args: str, secret: str | None = None, key: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SPARKPLANE_DATABASE_URL": url,
        "SPARKPLANE_HOME": str(tmp_path),
        "COLUMNS": "200",  # a wide terminal: table rows on one line each
    }
    env.pop("SPARKPLANE_CONFIG", None)
    env.pop("SPARKPLANE_AUDIT_HEAD_SECRET", None)
    env.pop("SPARKPLANE_AUDIT_HEAD_KEY", None)
    if secret is not None:
        env["SPARKPLANE_AUDIT_HEAD_SECRET"] = secret
    if key is not None:
        env["SPARKPLANE_AUDIT_HEAD_KEY"] = str(key)
    return subprocess.run(
        [SPARKPLANE, "audit", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
async def filled(sqlite_url: str) -> str:
    """A database with 30 entries, one every hour of 2026-11-01 from midnight."""
    engine = create_engine(sqlite_url)
    try:
        await migrate.upgrade(engine)
        times = iter(T0 + timedelta(hours=h) for h in range(30))
        audit = AuditLog(AuditStore(session_factory(engine)), clock=lambda: next(times))
        for i in range(30):
            audit.record(InferenceEvent("t1", "k1", model="m", op="chat", status=200, tokens_in=i))
        await audit.flush()
    finally:
        await engine.dispose()
    return sqlite_url


async def test_verify_passes_then_names_a_deleted_entry(tmp_path: Path, filled: str) -> None:
    ok = cli(tmp_path, filled, "verify")
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    assert "30 entries" in ok.stdout

    engine = create_engine(filled)
    try:
        async with session_factory(engine)() as session:
            await session.execute(delete(AuditRow).where(AuditRow.seq == 12))
            await session.commit()
    finally:
        await engine.dispose()
    broken = cli(tmp_path, filled, "verify")
    assert broken.returncode == 1
    assert "entry 12" in broken.stderr
    assert "missing" in broken.stderr
    report = json.loads(cli(tmp_path, filled, "verify", "--json").stdout)
    assert report["first_broken"] == 12
    assert report["ok"] is False


async def test_export_writes_jsonl_for_the_window(tmp_path: Path, filled: str) -> None:
    out = cli(tmp_path, filled, "export", "--since", "2026-11-01T20:00", "--until", "2026-11-02")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [e["seq"] for e in lines] == [21, 22, 23, 24]
    assert lines[0]["at"] == "2026-11-01T20:00:00.000000+00:00"
    assert lines[0]["data"]["tokens_in"] == 20
    assert lines[1]["prev_hash"] == lines[0]["hash"]

    target = tmp_path / "audit.jsonl"
    to_file = cli(tmp_path, filled, "export", "--since", "2026-11-01", "--output", str(target))
    assert to_file.returncode == 0, to_file.stderr
    assert "exported 30 entries" in to_file.stdout
    exported = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert len(exported) == 30


def test_export_refuses_a_date_it_cannot_read(tmp_path: Path, sqlite_url: str) -> None:
    out = cli(tmp_path, sqlite_url, "export", "--since", "last tuesday")
    assert out.returncode == 2
    assert "ISO 8601" in out.stderr
