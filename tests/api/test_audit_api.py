"""The audit API as an auditor sees it: entries listed and paged, filters by
tenant and action, the chain verified, and only keys with audit:read let in."""

from __future__ import annotations

from sqlalchemy import update

from sparkplane.db.engine import session_factory
from sparkplane.db.models import AuditRow
from sparkplane.security.audit_events import AdminEvent, InferenceEvent
from sparkplane.security.rbac import Role
from tests.conftest import SettingsFactory
from tests.support.gateway import Gateway, running_gateway


async def record_some(gw: Gateway) -> str:
    rt = gw.runtime
    tenant = await rt.tenants.create("acme")
    for i in range(5):
        rt.audit.record(
            InferenceEvent(tenant.id, "k1", model="m", op="chat", status=200, tokens_in=i)
        )
    rt.audit.record(InferenceEvent("other", "k2", model="m", op="chat", status=200))
    rt.audit.record(AdminEvent("keys.create", tenant.id, "k1", target="k3"))
    await rt.audit.flush()
    return tenant.id


async def test_entries_are_listed_filtered_and_paged(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings()) as gw:
        tenant_id = await record_some(gw)
        r = await gw.client.get("/api/audit")
        assert r.status_code == 200
        body = r.json()
        assert [e["seq"] for e in body["data"]] == list(range(1, 8))
        assert body["data"][-1]["action"] == "keys.create"
        assert body["next_after_seq"] is None

        newest = (await gw.client.get("/api/audit", params={"limit": 2})).json()
        assert [e["seq"] for e in newest["data"]] == [6, 7]

        by_name = {"tenant": "acme", "action": "inference", "after_seq": 0, "limit": 3}
        page = (await gw.client.get("/api/audit", params=by_name)).json()
        assert [e["data"]["tokens_in"] for e in page["data"]] == [0, 1, 2]
        assert all(e["tenant_id"] == tenant_id for e in page["data"])
        after = {**by_name, "after_seq": page["next_after_seq"]}
        rest = (await gw.client.get("/api/audit", params=after)).json()
        assert [e["data"]["tokens_in"] for e in rest["data"]] == [3, 4]

        by_id = (await gw.client.get("/api/audit", params={"tenant": "other"})).json()
        assert [e["key_id"] for e in by_id["data"]] == ["k2"]
        keys = (await gw.client.get("/api/audit", params={"action": "keys.*"})).json()
        assert [e["data"]["target"] for e in keys["data"]] == ["k3"]

        bad = await gw.client.get("/api/audit", params={"since": "yesterday"})
        assert bad.status_code == 400


async def test_verify_reports_a_tampered_entry(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings()) as gw:
        await record_some(gw)
        ok = (await gw.client.get("/api/audit/verify")).json()
        assert ok["ok"] is True
        assert ok["checked"] == 7
        async with session_factory(gw.runtime.engine)() as session:
            await session.execute(update(AuditRow).where(AuditRow.seq == 3).values(data={}))
            await session.commit()
        broken = (await gw.client.get("/api/audit/verify")).json()
        assert broken["ok"] is False
        assert broken["first_broken"] == 3
        assert "edited" in broken["reason"]


async def test_only_audit_readers_may_look(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        rt = gw.runtime
        tenant = await rt.tenants.create("acme")
        _, auditor = await rt.keys.create(tenant, Role.AUDITOR)
        _, member = await rt.keys.create(tenant, Role.MEMBER)
        _, operator = await rt.keys.create(tenant, Role.OPERATOR)
        for path in ("/api/audit", "/api/audit/verify"):
            assert (await gw.client.get(path)).status_code == 401
            for key in (member, operator):
                r = await gw.client.get(path, headers={"Authorization": f"Bearer {key}"})
                assert r.status_code == 403, path
            r = await gw.client.get(path, headers={"Authorization": f"Bearer {auditor}"})
            assert r.status_code == 200, path
