"""Rotating a key over the API with an overlap: both secrets work until the window
ends; the key listing shows the window and, once flushed, when the key was used."""

from __future__ import annotations

from sparkplane.security.rbac import Role
from tests.conftest import SettingsFactory
from tests.support.gateway import running_gateway
from tests.support.security import make_tenant


async def test_rotate_with_overlap_over_the_api(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings(auth_enabled=True)) as gw:
        keys = await make_tenant(gw.runtime, "acme", roles=(Role.ADMIN, Role.MEMBER))
        admin, old = keys.headers(Role.ADMIN), keys.key(Role.MEMBER)
        key_id = old[3:15]
        r = await gw.client.post(
            f"/api/keys/{key_id}/rotate", json={"overlap_s": 600}, headers=admin
        )
        assert r.status_code == 200, r.text
        new = r.json()["key"]
        assert r.json()["previous_secret_until"] is not None
        for secret in (old, new):
            ok = await gw.client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
            assert ok.status_code == 200

        too_long = await gw.client.post(
            f"/api/keys/{key_id}/rotate", json={"overlap_s": 31 * 86400}, headers=admin
        )
        assert too_long.status_code == 400
        assert too_long.json()["error"]["param"] == "overlap_s"

        # Without a body the old secret stops at once (within the auth cache time).
        r = await gw.client.post(f"/api/keys/{key_id}/rotate", headers=admin)
        assert r.status_code == 200
        assert r.json()["previous_secret_until"] is None
        latest = {"Authorization": f"Bearer {r.json()['key']}"}
        assert (await gw.client.get("/v1/models", headers=latest)).status_code == 200
        for gone in (old, new):
            refused = await gw.client.get("/v1/models", headers={"Authorization": f"Bearer {gone}"})
            assert refused.status_code == 401

        await gw.runtime.key_usage.flush()
        listed = await gw.client.get("/api/keys", headers=admin)
        used = {k["id"]: k["last_used_at"] for k in listed.json()["data"]}
        assert used[key_id] is not None
