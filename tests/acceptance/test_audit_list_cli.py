"""`sparkplane audit list --failed` as an operator runs it: the failed logins and
refused permissions, with where they came from and which key, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.security.audit import AuditLog
from sparkplane.security.audit_events import AuthFailedEvent, InferenceEvent
from sparkplane.security.audit_store import AuditStore
from tests.acceptance.test_audit_cli import cli


async def test_list_failed_shows_only_failures_with_source_and_key(
    tmp_path: Path, sqlite_url: str
) -> None:
    engine = create_engine(sqlite_url)
    try:
        await migrate.upgrade(engine)
        audit = AuditLog(AuditStore(session_factory(engine)))
        audit.record(InferenceEvent("t1", "aaaaaaaaaaaa", model="m", op="chat", status=200))
        audit.record(
            AuthFailedEvent("/v1/models", 401, "wrong_secret", None, "bbbbbbbbbbbb", "10.0.0.9")
        )
        audit.record(
            AuthFailedEvent("/api/devices", 403, "forbidden", None, "aaaaaaaaaaaa", "10.0.0.7")
        )
        await audit.flush()
    finally:
        await engine.dispose()

    shown = cli(tmp_path, sqlite_url, "list", "--failed")
    assert shown.returncode == 0, shown.stderr
    assert "401 wrong_secret from 10.0.0.9 /v1/models" in shown.stdout
    assert "403 forbidden from 10.0.0.7 /api/devices" in shown.stdout
    assert "bbbbbbbbbbbb" in shown.stdout
    assert "inference" not in shown.stdout

    lines = cli(tmp_path, sqlite_url, "list", "--failed", "--json").stdout.splitlines()
    entries = [json.loads(line) for line in lines]
    assert [(e["seq"], e["key_id"], e["data"]["client"]) for e in entries] == [
        (2, "bbbbbbbbbbbb", "10.0.0.9"),
        (3, "aaaaaaaaaaaa", "10.0.0.7"),
    ]
    everything = cli(tmp_path, sqlite_url, "list")
    assert "inference" in everything.stdout
