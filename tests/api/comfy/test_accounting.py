"""Workflow jobs are accounted like inference: rate limits at submission, and
each finished job metered (images, device time) and appended to the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp

from sparkplane.security.audit_events import JobEvent
from sparkplane.security.rbac import Role
from sparkplane.security.tenancy import Limits
from tests.conftest import SettingsFactory
from tests.fakes.comfyui import FakeComfyConfig
from tests.fakes.comfyui_conformance.flow import CHAIN
from tests.support.comfy import ComfyClient, comfy_gateway, fleet
from tests.support.security import make_tenant


async def test_jobs_are_metered_audited_and_rate_limited(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    settings = make_settings(auth_enabled=True)
    async with fleet([FakeComfyConfig()]) as fakes, comfy_gateway(settings, fakes, ["a"]) as gw:
        acme = await make_tenant(
            gw.runtime, "acme", limits=Limits(requests_per_minute=2), roles=(Role.MEMBER,)
        )
        app = ComfyClient(session, gw.url, acme.headers(Role.MEMBER))
        ws = await app.connect()
        first = await app.run(ws, CHAIN)
        await app.run(ws, CHAIN)
        status, answer = await app.post({"prompt": CHAIN, "client_id": app.client_id})
        assert status == 429
        assert answer["error"]["type"] == "rate_limit_error"

        await gw.runtime.meter.flush()
        await gw.runtime.audit.flush()
        r = await gw.client.get("/api/usage", headers=acme.headers(Role.MEMBER))
        workflow = r.json()["tenants"][0]["by_model"]["comfyui"]
        assert workflow["requests"] == 2
        assert workflow["images"] == 2
        assert workflow["device_seconds"] > 0

        assert (await gw.runtime.audit.verify()).ok
        since = datetime.now(UTC) - timedelta(hours=1)
        found = [
            row
            async for row in gw.runtime.audit.export(since)
            if row["action"] == JobEvent.action and row["data"]["prompt_id"] == first
        ]
        assert len(found) == 1
        assert found[0]["tenant_id"] == acme.tenant.id
        assert found[0]["data"]["status"] == "success"
        assert found[0]["data"]["images"] == 1
