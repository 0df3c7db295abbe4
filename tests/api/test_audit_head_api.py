"""`GET /api/audit/verify?expect_head=HASH`: a head kept elsewhere, checked over the
API as with `audit verify --expect-head`."""

from __future__ import annotations

from sqlalchemy import delete, select

from sparkplane.db.engine import session_factory
from sparkplane.db.models import AuditRow
from tests.conftest import SettingsFactory
from tests.support.gateway import running_gateway


async def test_verify_with_an_expected_head(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings()) as gw:
        for i in range(3):
            r = await gw.client.post("/api/tenants", json={"name": f"t{i}"})
            assert r.status_code == 201, r.text
        await gw.runtime.audit.flush(timeout=10)
        head = (await gw.client.get("/api/audit/verify")).json()
        assert head["ok"]
        assert head["head_seq"] == 3
        kept = await gw.client.get("/api/audit/verify", params={"expect_head": head["head_hash"]})
        assert kept.json()["ok"] is True

        async with session_factory(gw.runtime.engine)() as session:
            top = await session.scalar(select(AuditRow.seq).order_by(AuditRow.seq.desc()))
            await session.execute(delete(AuditRow).where(AuditRow.seq == top))
            await session.commit()
        assert (await gw.client.get("/api/audit/verify")).json()["ok"] is True
        cut = await gw.client.get("/api/audit/verify", params={"expect_head": head["head_hash"]})
        assert cut.json()["ok"] is False
        assert "cut off" in cut.json()["reason"]
        bad = await gw.client.get("/api/audit/verify", params={"expect_head": "nothex"})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "query.expect_head"
