"""Onboarding a client that administers itself, as docs/security.md tells it, with
the `sparkplane` CLI as a subprocess: the platform owner makes the tenant and its
first tenant admin (`keys create --scope tenant --role admin`); that admin's key
manages its own people over the API; `audit verify --tenant` and `audit export
--tenant` give the client its own chain alone."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.security.audit import AuditLog
from sparkplane.security.audit_events import InferenceEvent
from sparkplane.security.audit_store import AuditStore

SPARKPLANE = str(Path(sys.executable).parent / "sparkplane")
KEY = re.compile(r"sp-[0-9a-f]{12}_[A-Za-z0-9_-]{43,}")


def cli(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPARKPLANE_DATABASE_URL": url, "SPARKPLANE_HOME": str(tmp_path)}
    env.pop("SPARKPLANE_CONFIG", None)
    env["COLUMNS"] = "200"
    return subprocess.run(
        [SPARKPLANE, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_keys_create_names_its_scope(tmp_path: Path, sqlite_url: str) -> None:
    assert cli(tmp_path, sqlite_url, "tenants", "create", "acme").returncode == 0
    made = cli(
        tmp_path,
        sqlite_url,
        "keys",
        "create",
        "--tenant",
        "acme",
        "--scope",
        "tenant",
        "--role",
        "admin",
    )
    assert made.returncode == 0, made.stderr
    assert "tenant admin key" in made.stdout
    bad = cli(
        tmp_path,
        sqlite_url,
        "keys",
        "create",
        "--tenant",
        "acme",
        "--scope",
        "tenant",
        "--role",
        "owner",
    )
    assert bad.returncode == 1
    assert "a tenant key's --role must be one of admin, member, auditor" in bad.stderr
    owner = cli(tmp_path, sqlite_url, "keys", "create", "--tenant", "acme", "--role", "owner")
    assert "platform owner key" in owner.stdout
    listed = json.loads(cli(tmp_path, sqlite_url, "keys", "list", "--json").stdout)
    assert sorted((k["scope"], k["role"]) for k in listed) == [
        ("platform", "owner"),
        ("tenant", "admin"),
    ]
    key_id = KEY.search(made.stdout).group(0)[3:15]  # type: ignore[union-attr]
    rotated = cli(tmp_path, sqlite_url, "keys", "rotate", key_id)
    assert rotated.returncode == 0, rotated.stderr
    new = KEY.search(rotated.stdout)
    assert new is not None
    assert new.group(0) != KEY.search(made.stdout).group(0)  # type: ignore[union-attr]


async def test_audit_verify_and_export_for_one_tenant(tmp_path: Path, sqlite_url: str) -> None:
    for name in ("acme", "globex"):
        assert cli(tmp_path, sqlite_url, "tenants", "create", name).returncode == 0
    ids = {
        t["name"]: t["id"]
        for t in json.loads(cli(tmp_path, sqlite_url, "tenants", "list", "--json").stdout)
    }
    engine = create_engine(sqlite_url)
    try:
        await migrate.upgrade(engine)
        audit = AuditLog(AuditStore(session_factory(engine)))
        for i in range(9):
            tenant = ids["acme"] if i % 3 == 0 else ids["globex"]
            audit.record(InferenceEvent(tenant, "k1", model="m", op="chat", status=200))
        await audit.flush()
    finally:
        await engine.dispose()

    ok = cli(tmp_path, sqlite_url, "audit", "verify", "--tenant", "acme", "--json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    # acme: its creation (tenants.create) and three inference entries.
    assert (report["ok"], report["checked"], report["head_seq"]) == (True, 4, 4)
    out = tmp_path / "acme.jsonl"
    done = cli(
        tmp_path,
        sqlite_url,
        "audit",
        "export",
        "--since",
        "2000-01-01",
        "--tenant",
        "acme",
        "--output",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["seq"] for e in lines] == [1, 2, 3, 4]
    assert {e["tenant_id"] for e in lines} == {ids["acme"]}
    fleet = json.loads(cli(tmp_path, sqlite_url, "audit", "verify", "--json").stdout)
    assert fleet["checked"] == 11


def test_a_tenant_admin_manages_only_its_own_people(tmp_path: Path, sqlite_url: str) -> None:
    # Over the API (in process): the onboarding of docs/security.md, step by step.
    from fastapi.testclient import TestClient

    from sparkplane.app import create_app
    from sparkplane.config import Settings

    cli(
        tmp_path,
        sqlite_url,
        "tenants",
        "create",
        "acme",
        "--limits",
        '{"requests_per_minute": 600}',
    )
    cli(tmp_path, sqlite_url, "tenants", "create", "globex")
    made = cli(
        tmp_path,
        sqlite_url,
        "keys",
        "create",
        "--tenant",
        "acme",
        "--scope",
        "tenant",
        "--role",
        "admin",
        "--name",
        "acme IT",
    )
    admin = KEY.search(made.stdout).group(0)  # type: ignore[union-attr]
    settings = Settings(home=tmp_path, database_url=sqlite_url, auth_enabled=True, discover=False)
    with TestClient(create_app(settings, discover=False)) as client:
        h = {"Authorization": f"Bearer {admin}"}
        r = client.post("/api/keys", json={"role": "member", "name": "dr. who"}, headers=h)
        assert r.status_code == 201, r.text
        assert (r.json()["tenant"], r.json()["scope"]) == ("acme", "tenant")
        member_id = r.json()["id"]
        r = client.patch(
            f"/api/keys/{member_id}", json={"limits": {"requests_per_minute": 60}}, headers=h
        )
        assert r.status_code == 200, r.text
        r = client.patch(
            f"/api/keys/{member_id}", json={"limits": {"requests_per_minute": 6000}}, headers=h
        )
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "over_tenant_limit"
        r = client.post("/api/keys", json={"role": "owner"}, headers=h)
        assert r.status_code == 403
        r = client.post("/api/keys", json={"role": "auditor", "scope": "platform"}, headers=h)
        assert r.status_code == 403
        r = client.post("/api/keys", json={"tenant": "globex", "role": "member"}, headers=h)
        assert r.status_code == 404
        r = client.get("/api/keys", headers=h)
        assert {k["name"] for k in r.json()["data"]} == {"acme IT", "dr. who"}
        r = client.post(f"/api/keys/{member_id}/rotate", headers=h)
        assert r.status_code == 200
        assert KEY.fullmatch(r.json()["key"])
        r = client.delete(f"/api/keys/{member_id}", headers=h)
        assert r.json()["revoked_at"] is not None
        r = client.get("/api/tenants/acme", headers=h)
        assert r.json()["limits"]["requests_per_minute"] == 600
        r = client.patch("/api/tenants/acme", json={"limits": {}}, headers=h)
        assert r.status_code == 403
