"""`GET /api/usage` as callers of each role see it."""

from __future__ import annotations

import csv
import io

from sparkplane.security.rbac import Role, Scope
from sparkplane.security.tenancy import Prices
from sparkplane.usage.records import UsageRecord
from sparkplane.usage.store import current_month
from tests.conftest import SettingsFactory
from tests.support.gateway import running_gateway


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_usage_is_scoped_to_the_callers_tenant(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        rt = gw.runtime
        acme = await rt.tenants.create("acme", prices=Prices(per_1k_input_tokens=1.0))
        beta = await rt.tenants.create("beta")
        _, member = await rt.keys.create(acme, Role.MEMBER)
        _, auditor = await rt.keys.create(beta, Role.AUDITOR, scope=Scope.PLATFORM)
        _, beta_auditor = await rt.keys.create(beta, Role.AUDITOR, scope=Scope.TENANT)
        _, operator = await rt.keys.create(beta, Role.OPERATOR)
        rt.meter.record(UsageRecord(acme.id, None, "chat", "llama", "spark", 200, tokens_in=2000))
        rt.meter.record(UsageRecord(beta.id, None, "chat", "llama", "spark", 200, tokens_in=7))
        await rt.meter.flush()

        r = await gw.client.get("/api/usage", headers=bearer(member))
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["month"] == current_month()
        assert [t["tenant"] for t in doc["tenants"]] == ["acme"]
        assert doc["tenants"][0]["total"]["cost"] == 2.0

        # Another tenant's usage does not exist for a member, whether it exists or not.
        for name in ("beta", "nobody"):
            r = await gw.client.get("/api/usage", params={"tenant": name}, headers=bearer(member))
            assert r.status_code == 404
            assert r.json()["error"]["code"] == "tenant_not_found"

        r = await gw.client.get("/api/usage", headers=bearer(auditor))
        assert [t["tenant"] for t in r.json()["tenants"]] == ["acme", "beta"]
        # A tenant's own auditor sees its tenant only, and another is as if absent.
        r = await gw.client.get("/api/usage", headers=bearer(beta_auditor))
        assert [t["tenant"] for t in r.json()["tenants"]] == ["beta"]
        r = await gw.client.get("/api/usage?tenant=acme", headers=bearer(beta_auditor))
        assert r.status_code == 404
        r = await gw.client.get(
            "/api/usage", params={"tenant": "acme", "format": "csv"}, headers=bearer(auditor)
        )
        assert r.headers["content-type"].startswith("text/csv")
        totals = [row for row in csv.DictReader(io.StringIO(r.text)) if row["group"] == "total"]
        assert [(row["tenant"], row["tokens_in"]) for row in totals] == [("acme", "2000")]

        r = await gw.client.get("/api/usage", headers=bearer(operator))
        assert r.status_code == 403
        r = await gw.client.get("/api/usage", params={"month": "2026-13"}, headers=bearer(auditor))
        assert r.status_code == 400
        r = await gw.client.get("/api/usage", params={"month": "nov"}, headers=bearer(auditor))
        assert r.status_code == 400


async def test_energy_follows_the_power_figure_set_on_a_device(
    make_settings: SettingsFactory,
) -> None:
    async with running_gateway(make_settings()) as gw:
        r = await gw.client.post(
            "/api/devices", json={"url": "http://127.0.0.1:9", "name": "spark", "kind": "openai"}
        )
        assert r.status_code == 201, r.text
        r = await gw.client.patch("/api/devices/spark", json={"power_w": 240})
        assert r.status_code == 200, r.text
        assert r.json()["extra"]["power_w"] == 240
        assert (
            await gw.client.patch("/api/devices/spark", json={"power_w": -1})
        ).status_code == 400
        rt = gw.runtime
        rt.meter.record(UsageRecord(None, None, "chat", "m", "spark", 200, device_seconds=1800))
        await rt.meter.flush()
        doc = (await gw.client.get("/api/usage")).json()
        assert doc["tenants"][0]["by_device"]["spark"]["energy_wh"] == 120.0
