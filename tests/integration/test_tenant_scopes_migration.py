"""Migration 0005_tenant_scopes on SQLite and PostgreSQL: keys of the single-scope
model keep what they could do (admin -> platform owner, operator and auditor ->
platform, member -> tenant member), existing audit entries join their tenants'
chains, and the migration reverts and re-applies."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from sparkplane.db import migrate
from sparkplane.db.engine import create_engine, session_factory
from sparkplane.db.models import Base
from sparkplane.security.audit import AuditLog, verify, verify_tenant
from sparkplane.security.audit_chain import GENESIS, entry_hash
from sparkplane.security.audit_events import AdminEvent
from sparkplane.security.audit_store import AuditStore

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
# Columns later migrations add to the tables this one shapes.
ADDED_LATER = {
    "api_keys": {"last_used_at", "previous_secret_hash", "previous_until"},
    "audit_log": {"entry_id"},
}
OLD_ROLES = {"k-admin": "admin", "k-oper": "operator", "k-audit": "auditor", "k-member": "member"}


async def _old_world(conn: object) -> None:
    """Tenants, keys and a chained log as a 0004 database holds them."""
    run = conn.execute  # type: ignore[attr-defined]
    for tenant in ("acme", "globex"):
        await run(
            text(
                "INSERT INTO tenants (id, name, created_at, disabled, policy, limits, prices) "
                "VALUES (:id, :id, :at, false, '{}', '{}', '{}')"
            ),
            {"id": tenant, "at": NOW},
        )
    for key_id, role in OLD_ROLES.items():
        await run(
            text(
                "INSERT INTO api_keys (id, tenant_id, name, role, secret_hash, created_at, limits)"
                " VALUES (:id, 'acme', '', :role, :h, :at, '{}')"
            ),
            {"id": key_id, "role": role, "h": "0" * 64, "at": NOW},
        )
    prev = GENESIS
    for seq, tenant in enumerate(["acme", "globex", None, "acme", "globex", "acme"], start=1):
        data = {"n": seq}
        digest = entry_hash(prev, seq, NOW, "inference", tenant, "k-member", data)
        await run(
            text(
                "INSERT INTO audit_log (seq, at, action, tenant_id, key_id, data, prev_hash, hash)"
                " VALUES (:seq, :at, 'inference', :t, 'k-member', :data, :prev, :hash)"
            ),
            {
                "seq": seq,
                "at": NOW,
                "t": tenant,
                "data": f'{{"n": {seq}}}',
                "prev": prev,
                "hash": digest,
            },
        )
        prev = digest


async def _roles(engine: object) -> dict[str, tuple[str, ...]]:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        columns = await conn.run_sync(
            lambda c: {x["name"] for x in inspect(c).get_columns("api_keys")}
        )
        scope = ", scope" if "scope" in columns else ""
        rows = await conn.execute(text(f"SELECT id, role{scope}, revoked_at FROM api_keys"))
        return {row[0]: tuple(str(v) if v is not None else "" for v in row[1:]) for row in rows}


async def test_keys_keep_their_access_and_old_entries_join_tenant_chains(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine, "0004_residency")
        async with engine.begin() as conn:
            await _old_world(conn)
        await migrate.upgrade(engine, "0005_tenant_scopes")
        assert await migrate.current_revision(engine) == "0005_tenant_scopes"
        roles = await _roles(engine)
        assert roles["k-admin"][:2] == ("owner", "platform")
        assert roles["k-oper"][:2] == ("operator", "platform")
        assert roles["k-audit"][:2] == ("auditor", "platform")
        assert roles["k-member"][:2] == ("member", "tenant")
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda c: {
                    t: {col["name"] for col in inspect(c).get_columns(t)}
                    for t in ("api_keys", "audit_log")
                }
            )
        for table, found in columns.items():
            expected = set(Base.metadata.tables[table].columns.keys()) - ADDED_LATER[table]
            assert found == expected, table

        store = AuditStore(session_factory(engine))
        assert (await verify(store)).ok
        acme, globex = await verify_tenant(store, "acme"), await verify_tenant(store, "globex")
        assert (acme.ok, acme.checked, globex.ok, globex.checked) == (True, 3, True, 2)
        # New entries carry on from the migrated heads (written by today's schema).
        await migrate.upgrade(engine)
        log = AuditLog(store)
        log.record(AdminEvent("keys.create", "acme", None, target="k-new"))
        await log.flush()
        assert (await verify_tenant(store, "acme")).checked == 4

        # Added tenant roles, then down: nobody gains access by the downgrade.
        async with engine.begin() as conn:
            for key_id, role in (("k-tadmin", "admin"), ("k-taudit", "auditor")):
                await conn.execute(
                    text(
                        "INSERT INTO api_keys (id, tenant_id, name, role, scope, secret_hash,"
                        " created_at, limits) VALUES (:id, 'acme', '', :role, 'tenant', :h,"
                        " :at, '{}')"
                    ),
                    {"id": key_id, "role": role, "h": "0" * 64, "at": NOW},
                )
        await migrate.downgrade(engine, "0004_residency")
        roles = await _roles(engine)
        assert {k: v[0] for k, v in roles.items()} == {
            **OLD_ROLES,
            "k-tadmin": "member",
            "k-taudit": "member",
        }
        assert roles["k-taudit"][1] != ""  # revoked
        assert roles["k-tadmin"][1] == ""
        await migrate.upgrade(engine)
        assert (await verify_tenant(store, "acme")).checked == 4
    finally:
        await engine.dispose()
